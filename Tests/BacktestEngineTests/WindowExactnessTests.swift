import BacktestCore
import BacktestModel
import BacktestTestSupport
import Foundation
import Testing

@testable import BacktestEngine

/// Issue 14 item 8: every windowed indicator against an exact computation, to 1e-12 relative,
/// on every shared ticker (split-adjusted, over the whole file).
///
/// "Exact" here: window sums with `ExactSum` (Shewchuk's exact partials, Python's math.fsum),
/// products split exactly with a fused multiply-add, maxima and minima by brute force; what is
/// not a window sum (a daily return, a ratio of two prices) is the definition itself.
@Suite("Windowed indicators against exact sums, every shared ticker", .offCooperativePool)
struct WindowExactnessTests {
    static let tickers: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: SharedData.dailyDirectory.path)) ?? []
        return names.filter { $0.hasSuffix(".csv") }.map { String($0.dropLast(4)) }.sorted()
    }()

    /// Worst relative error seen per indicator (for the report when a test fails).
    static func check(_ name: String, _ ticker: String, _ actual: [Double], _ exact: [Double?], floor: Double = 0) {
        #expect(actual.count == exact.count, "\(ticker) \(name): length")
        var worst = 0.0
        var worstIndex = -1
        for (i, (a, e)) in zip(actual, exact).enumerated() {
            guard let e else {
                if !a.isNaN { Issue.record("\(ticker) \(name)[\(i)]: \(a), expected undefined") }
                continue
            }
            let error = abs(a - e) / max(abs(e), floor, .leastNormalMagnitude)
            if !(error <= worst) { worst = error; worstIndex = i }
        }
        #expect(worst <= 1e-12, "\(ticker) \(name): relative error \(worst) at \(worstIndex)")
    }

    static func windows(_ count: Int, _ period: Int, _ body: (Range<Int>) -> Double) -> [Double?] {
        (0..<count).map { t in t >= period - 1 ? body((t - period + 1)..<(t + 1)) : nil }
    }

    static func exactMean(_ x: ArraySlice<Double>) -> Double {
        var sum = ExactSum()
        for value in x { sum.add(value) }
        return sum.value / Double(x.count)
    }

    /// Population variance: exact mean, then the exact sum of squared deviations.
    static func exactVariance(_ x: ArraySlice<Double>) -> Double {
        let mean = exactMean(x)
        var sum = ExactSum()
        for value in x {
            let d = value - mean
            let square = d * d
            sum.add(square)
            sum.add((-square).addingProduct(d, d))
        }
        return sum.value / Double(x.count)
    }

    @Test("sma, wma, stddev, bbands, highest, lowest, roc, stoch, return statistics", arguments: tickers)
    func exactness(ticker: String) throws {
        let bars = try TestData.bars(ticker)
        let close = bars.close
        let n = close.count
        func series(_ text: String) throws -> [Double] {
            try IndicatorCalculator.compute(try IndicatorSpec(parsing: text), bars: bars)
        }
        for period in [5, 20] {
            Self.check("sma:\(period)", ticker, try series("sma:\(period)"), Self.windows(n, period) { Self.exactMean(close[$0]) })
        }
        // The long window on every 10th bar (the running sum's drift would show on any of them).
        let sma200 = try series("sma:200")
        let exact200: [Double?] = (0..<n).map { t in t >= 199 && t % 10 == 0 ? Self.exactMean(close[(t - 199)...t]) : nil }
        Self.check("sma:200", ticker, zip(sma200, exact200).map { $1 == nil ? .nan : $0 }, exact200)
        Self.check("wma:30", ticker, try series("wma:30"), Self.windows(n, 30) { range in
            var sum = ExactSum()
            for (k, i) in range.enumerated() {
                let product = close[i] * Double(k + 1)
                sum.add(product)
                sum.add((-product).addingProduct(close[i], Double(k + 1)))
            }
            return sum.value / Double(30 * 31 / 2)
        })
        let variance = Self.windows(n, 20) { Self.exactVariance(close[$0]) }
        // TA-Lib's rule: a variance below 1e-14 is 0.
        let deviation = variance.map { $0.map { $0 < 1e-14 ? 0 : $0.squareRoot() } }
        Self.check("stddev:20", ticker, try series("stddev:20"), deviation)
        let middle = Self.windows(n, 20) { Self.exactMean(close[$0]) }
        Self.check("bbands:20,2:middle", ticker, try series("bbands:20,2:middle"), middle)
        let upper = zip(middle, deviation).map { m, d in m.flatMap { m in d.map { m + 2 * $0 } } }
        let lower = zip(middle, deviation).map { m, d in m.flatMap { m in d.map { m - 2 * $0 } } }
        Self.check("bbands:20,2:upper", ticker, try series("bbands:20,2:upper"), upper)
        Self.check("bbands:20,2:lower", ticker, try series("bbands:20,2:lower"), lower)
        // percent_b is a fraction of the band's width: absolute error relative to the width's scale.
        let percentB = (0..<n).map { i -> Double? in
            guard let u = upper[i], let l = lower[i] else { return nil }
            return u - l != 0 ? (close[i] - l) / (u - l) : nil
        }
        Self.check("bbands:20,2:percent_b", ticker, try series("bbands:20,2:percent_b").map { $0 }, percentB, floor: 1)
        Self.check("highest:20", ticker, try series("highest:20"), Self.windows(n, 20) { close[$0].max()! })
        Self.check("lowest:20", ticker, try series("lowest:20"), Self.windows(n, 20) { close[$0].min()! })
        var roc: [Double?] = Array(repeating: nil, count: n)
        var cumulative: [Double?] = Array(repeating: nil, count: n)
        for t in 10..<n {
            let change: Double = close[t] - close[t - 10]
            roc[t] = change / close[t - 10] * 100
        }
        for t in 60..<n {
            let change: Double = close[t] - close[t - 60]
            cumulative[t] = change / close[t - 60]
        }
        Self.check("roc:10", ticker, try series("roc:10"), roc, floor: 1e-9)
        Self.check("cumulative_return:60", ticker, try series("cumulative_return:60"), cumulative, floor: 1e-9)
        Self.check("max_drawdown:60", ticker, try series("max_drawdown:60"), Self.windows(n, 60) { range in
            var worst = 0.0
            var peak = close[range.lowerBound]
            for i in range {
                peak = max(peak, close[i])
                worst = max(worst, (peak - close[i]) / peak)
            }
            return worst
        }, floor: 1e-9)
        // Daily returns as defined (close[t] / close[t-1] - 1), then exact window statistics.
        let returns = (1..<n).map { close[$0] / close[$0 - 1] - 1 }
        Self.check("return_mean:20", ticker, try series("return_mean:20"), (0..<n).map { t in
            t >= 20 ? Self.exactMean(returns[(t - 20)..<t]) : nil
        }, floor: 1e-9)
        Self.check("return_stddev:20", ticker, try series("return_stddev:20"), (0..<n).map { t in
            t >= 20 ? Self.exactVariance(returns[(t - 20)..<t]).squareRoot() : nil
        }, floor: 1e-9)
        // Stochastic 14,3,3: fast %K by its definition, then exact SMAs of it.
        let high = bars.high
        let low = bars.low
        var fast: [Double?] = Array(repeating: nil, count: n)
        for t in 13..<n {
            let hh = high[(t - 13)...t].max()!
            let ll = low[(t - 13)...t].min()!
            let diff = (hh - ll) / 100
            fast[t] = diff != 0 ? (close[t] - ll) / diff : 0
        }
        func smaOf(_ x: [Double?], _ period: Int) -> [Double?] {
            (0..<n).map { t in
                guard t >= period - 1 else { return nil }
                let window = x[(t - period + 1)...t]
                guard window.allSatisfy({ $0 != nil }) else { return nil }
                return Self.exactMean(ArraySlice(window.map { $0! }))
            }
        }
        let k = smaOf(fast, 3)
        let d = smaOf(k, 3)
        let kAligned = (0..<n).map { d[$0] == nil ? nil : k[$0] }
        Self.check("stoch:14,3,3:k", ticker, try series("stoch:14,3,3:k"), kAligned, floor: 1e-9)
        Self.check("stoch:14,3,3:d", ticker, try series("stoch:14,3,3:d"), d, floor: 1e-9)
    }

    @Test("the exact sum is exact where plain summation is not")
    func exactSum() {
        var sum = ExactSum()
        for x in [1e100, 1.0, -1e100, 1e-20] { sum.add(x) }
        #expect(sum.value == 1.0 + 1e-20)
    }
}

/// Python's math.fsum (Shewchuk's non-overlapping partials): the correctly rounded sum of all
/// the values added.
struct ExactSum {
    private var partials: [Double] = []

    mutating func add(_ value: Double) {
        var x = value
        var i = 0
        for j in partials.indices {
            var y = partials[j]
            if abs(x) < abs(y) { swap(&x, &y) }
            let high = x + y
            let low = y - (high - x)
            if low != 0 {
                partials[i] = low
                i += 1
            }
            x = high
        }
        partials.removeSubrange(i...)
        partials.append(x)
    }

    var value: Double {
        // Sum from the largest partial down, with math.fsum's final half-way correction.
        var n = partials.count
        guard n > 0 else { return 0 }
        n -= 1
        var high = partials[n]
        var low = 0.0
        while n > 0 {
            let x = high
            n -= 1
            let y = partials[n]
            high = x + y
            let yr = high - x
            low = y - yr
            if low != 0 { break }
        }
        if n > 0 && ((low < 0 && partials[n - 1] < 0) || (low > 0 && partials[n - 1] > 0)) {
            let y = low * 2
            let x = high + y
            if y == x - high { high = x }
        }
        return high
    }
}
