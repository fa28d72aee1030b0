import BacktestCore
import BacktestModel
import Testing

@testable import BacktestEngine

/// Issue 14's engine and metric edges (items 3, 4, 5, 7), each input with its right value from
/// a day loop written out in the comments, run through all three paths: the v2 engine (FULL),
/// the sweep's `MetricAccumulator` (SUMMARY) and the reference engine.
@Suite("Edges: trade counts, drawdown duration, first-day crosses, degenerate ratios", .offCooperativePool)
struct EdgeCaseTests {
    /// SPY's trading days from 2019-06-03 on, `closes.count` of them.
    static func dates(_ count: Int, from iso: String = "2019-06-03") throws -> [TradingDate] {
        let spy = try TestData.bars("SPY")
        let from = spy.lowerBound(TestData.date(iso))
        return Array(spy.dates[from..<(from + count)])
    }

    /// A synthetic ticker on `dates`: open = high = low = close, volume 1000 (or `volume`).
    static func bars(_ symbol: String, _ dates: [TradingDate], _ closes: [Double], volume: [Double]? = nil) -> DailyBars {
        var bars = DailyBars(symbol: symbol)
        for (t, date) in dates.enumerated() {
            bars.append(date: date, open: closes[t], high: closes[t], low: closes[t], close: closes[t], volume: volume?[t] ?? 1000)
        }
        return bars
    }

    /// A benchmark that moves (so alpha and beta are defined): alternating +1 % / -0.5 %.
    static func benchmark(_ dates: [TradingDate]) -> DailyBars {
        var close = 100.0
        var closes: [Double] = []
        for t in dates.indices {
            closes.append(close)
            close *= t % 2 == 0 ? 1.01 : 0.995
        }
        return bars("BENCH", dates, closes)
    }

    /// Runs `strategy` through v2, the sweep summary and the reference engine; returns v2's
    /// result after checking the other two agree with it.
    static func runAll(_ strategy: Strategy, _ settings: BacktestSettings, _ snapshot: MarketSnapshot) throws -> BacktestResult {
        let full = try VectorEngine().run(strategy, settings: settings, snapshot: snapshot, indicators: IndicatorStore())
        let market = try PreparedMarket(settings: settings, snapshot: snapshot)
        let summary = try SweepRunner.summaries([strategy], market: market, indicators: IndicatorStore(), parallelism: 1)[0].get()
        #expect(SweepTests.bits(summary.metrics) == SweepTests.bits(full.metrics), "summary \(summary.metrics) vs full \(full.metrics)")
        #expect(summary.warnings == full.warnings)
        let reference = try ReferenceEngine().run(strategy, settings: settings, snapshot: snapshot, indicators: IndicatorStore())
        DifferentialTests.expectEqual(full, reference, strategy.name)
        return full
    }

    static func settings(_ dates: [TradingDate], start: Int = 0) -> BacktestSettings {
        var settings = BacktestSettings(start: dates[start], end: dates[dates.count - 1])
        settings.benchmark = "BENCH"
        return settings
    }

    // MARK: Item 4: drawdown duration (pyfolio: the peak is the last day at the high before the trough)

    @Test("drawdown: days at the high are not drawdown; an exact return to the high moves the peak")
    func drawdownDefinitions() {
        // Six days in cash, bought on day 6, -20 % on day 7, back at the high on day 10.
        let (depth, days) = PerformanceMetrics.maxDrawdown([100, 100, 100, 100, 100, 100, 100, 80, 90, 95, 100, 101])
        #expect(abs(depth - -0.2) < 1e-15 && days == 4)
        // Back exactly at the old high on day 2, then a deeper fall that never recovers: the peak
        // is day 2, the duration runs to the last day (4 - 2).
        let (deeper, open) = PerformanceMetrics.maxDrawdown([100, 90, 100, 70, 80])
        #expect(abs(deeper - -0.3) < 1e-15 && open == 2)
        // Never below the high: no drawdown.
        #expect(PerformanceMetrics.maxDrawdown([100, 100, 101, 101]) == (0, 0))
    }

    @Test("drawdown duration through the engines: six days in cash, buy, fall 20 %, recover on day 10")
    func drawdownThroughEngines() throws {
        let dates = try Self.dates(14)
        let closes: [Double] = [100, 100, 100, 100, 100, 100, 100, 80, 90, 95, 100, 100, 100, 100]
        var volume = [Double](repeating: 1000, count: dates.count)
        volume[6] = 5000
        let snapshot = MarketSnapshot(
            bars: ["X": Self.bars("X", dates, closes, volume: volume), "BENCH": Self.benchmark(dates)], source: "test")
        // Buys at day 6's close (volume spike), never exits.
        let strategy = Strategy(
            name: "dd", positions: [Position(
                ticker: "X", weight: 1, entry: compare(series("volume"), .greater, .number(4000)),
                exit: compare(series("close"), .less, .number(0)))],
            fill: .close)
        let result = try Self.runAll(strategy, Self.settings(dates), snapshot)
        #expect(result.orders.count == 1 && result.orders[0].date == dates[6])
        #expect(abs(result.metrics.maxDrawdown - -0.2) < 1e-12)
        #expect(result.metrics.maxDrawdownDuration == 4)
        // The position is still open: no closed round trip.
        #expect(result.metrics.tradeCount == 0 && result.metrics.winRate.isNaN && result.metrics.profitFactor.isNaN)
    }

    @Test("drawdown through the engines: back exactly at the high, then a deeper fall that never recovers")
    func deeperUnrecovered() throws {
        let dates = try Self.dates(6)
        let snapshot = MarketSnapshot(
            bars: ["X": Self.bars("X", dates, [100, 90, 100, 70, 80, 75]), "BENCH": Self.benchmark(dates)], source: "test")
        let strategy = Strategy(
            name: "hold", positions: [Position(ticker: "X", weight: 1, entry: compare(series("close"), .greater, .number(0)))],
            fill: .close)
        let result = try Self.runAll(strategy, Self.settings(dates), snapshot)
        #expect(abs(result.metrics.maxDrawdown - -0.3) < 1e-12)
        #expect(result.metrics.maxDrawdownDuration == 3)  // peak day 2, not recovered by day 5
    }

    // MARK: Item 3: trade counts

    @Test("trade count, win rate and profit factor count closed round trips only")
    func tradeCounts() throws {
        let dates = try Self.dates(12)
        // In when close > 100: bought day 1 (101), sold day 3 (99): loss; bought day 5 (102), sold
        // day 7 (100): loss... the day loop: buys at 101 (d1), 110 (d5), 104 (d9); sells at 99 (d3),
        // 95 (d7); the third is open at the end.
        let closes: [Double] = [100, 101, 105, 99, 98, 110, 120, 95, 90, 104, 106, 108]
        let snapshot = MarketSnapshot(bars: ["X": Self.bars("X", dates, closes), "BENCH": Self.benchmark(dates)], source: "test")
        let strategy = Strategy(
            name: "in above 100",
            positions: [Position(ticker: "X", weight: 1, entry: compare(series("close"), .greater, .number(100)))], fill: .close)
        let result = try Self.runAll(strategy, Self.settings(dates), snapshot)
        #expect(result.orders.count == 5)
        // Closed: 101 -> 99 (loss), 110 -> 95 (loss). Open: 104 -> 108 (not counted).
        #expect(result.metrics.tradeCount == 2)
        #expect(result.metrics.winRate == 0)
        #expect(result.metrics.profitFactor == 0)
        // One winner, one loser, one open: buy below 100 (above 92), sell above 104 or below 92.
        // Day loop: buy 99 (d1), sell 105 (d2): +100,000 x 6/99; buy 98 (d3), sell 91 (d5):
        // -100,000 x 105/99 x 7/98; buy 95 (d6), open at the end. Profit factor 588/735 = 0.8.
        let swing: [Double] = [100, 99, 105, 98, 97, 91, 95, 96, 97, 98, 99, 99]
        let snapshot2 = MarketSnapshot(bars: ["X": Self.bars("X", dates, swing), "BENCH": Self.benchmark(dates)], source: "test")
        let swingStrategy = Strategy(
            name: "swing",
            positions: [Position(
                ticker: "X", weight: 1,
                entry: .all([compare(series("close"), .less, .number(100)), compare(series("close"), .greater, .number(92))]),
                exit: .any([compare(series("close"), .greater, .number(104)), compare(series("close"), .less, .number(92))]))],
            fill: .close)
        let result2 = try Self.runAll(swingStrategy, Self.settings(dates), snapshot2)
        #expect(result2.orders.count == 5)
        #expect(result2.metrics.tradeCount == 2 && result2.metrics.winRate == 0.5)
        #expect(abs(result2.metrics.profitFactor - 0.8) < 1e-12)
    }

    // MARK: Item 5: crossings on the first simulated day

    @Test("a cross on the first simulated day compares with the day before the window")
    func firstDayCross() throws {
        // X closes 99 on 2019-06-05 and 101 on 2019-06-06: `close crosses_above 100` is true on 06-06.
        let dates = try Self.dates(8, from: "2019-06-03")
        let closes: [Double] = [98, 98.5, 99, 101, 102, 103, 104, 105]
        #expect(dates[3] == TestData.date("2019-06-06"))
        let snapshot = MarketSnapshot(bars: ["X": Self.bars("X", dates, closes), "BENCH": Self.benchmark(dates)], source: "test")
        let strategy = Strategy(
            name: "cross", positions: [Position(
                ticker: "X", weight: 1, entry: compare(series("close"), .crossesAbove, .number(100)),
                exit: compare(series("close"), .less, .number(50)))],
            fill: .close)
        for start in [2, 3] {
            let result = try Self.runAll(strategy, Self.settings(dates, start: start), snapshot)
            #expect(result.orders.map(\.date) == [TestData.date("2019-06-06")], "start \(dates[start])")
        }
        // Also through crosses_below with an indicator on the left.
        let below = Strategy(
            name: "cross below", positions: [Position(
                ticker: "X", weight: 1, entry: compare(.number(100), .crossesBelow, series("close")),
                exit: compare(series("close"), .less, .number(50)))],
            fill: .close)
        let result = try Self.runAll(below, Self.settings(dates, start: 3), snapshot)
        #expect(result.orders.map(\.date) == [TestData.date("2019-06-06")])
        // The first day of the data itself has no day before: no cross.
        let early = try Self.runAll(strategy, Self.settings(dates, start: 0), MarketSnapshot(
            bars: ["X": Self.bars("X", dates, [101] + closes.dropFirst()), "BENCH": Self.benchmark(dates)], source: "test"))
        #expect(early.orders.map(\.date) == [TestData.date("2019-06-06")])
    }

    // MARK: Item 7: degenerate statistics

    @Test("constant returns: volatility 0, Sharpe/Sortino/Calmar absent with a warning, never 1e15")
    func constantReturns() throws {
        let dates = try Self.dates(30)
        let closes = dates.indices.map { 100 * pow(1.001, Double($0)) }
        let snapshot = MarketSnapshot(bars: ["X": Self.bars("X", dates, closes), "BENCH": Self.benchmark(dates)], source: "test")
        let strategy = Strategy(
            name: "hold", positions: [Position(ticker: "X", weight: 1, entry: compare(series("close"), .greater, .number(0)))],
            fill: .close)
        let result = try Self.runAll(strategy, Self.settings(dates), snapshot)
        let m = result.metrics
        #expect(m.volatility == 0)
        #expect(m.sharpe.isNaN && m.sortino.isNaN && m.calmar.isNaN)
        #expect(abs(m.totalReturn - (pow(1.001, 29) - 1)) < 1e-12)
        #expect(m.maxDrawdown == 0 && m.maxDrawdownDuration == 0)
        #expect(result.warnings.contains {
            $0.message.contains("sharpe (the daily returns have no variance)") && $0.message.contains("sortino") && $0.message.contains("calmar")
        })
    }

    @Test("all cash: ratios absent, no trades, one warning")
    func allCash() throws {
        let dates = try Self.dates(10)
        let snapshot = MarketSnapshot(
            bars: ["X": Self.bars("X", dates, Array(repeating: 50, count: 10)), "BENCH": Self.benchmark(dates)], source: "test")
        let strategy = Strategy(
            name: "never", positions: [Position(ticker: "X", weight: 1, entry: compare(series("close"), .greater, .number(60)))],
            fill: .close)
        let result = try Self.runAll(strategy, Self.settings(dates), snapshot)
        let m = result.metrics
        #expect(m.totalReturn == 0 && m.volatility == 0 && m.tradeCount == 0)
        #expect(m.sharpe.isNaN && m.sortino.isNaN && m.calmar.isNaN && m.winRate.isNaN && m.profitFactor.isNaN)
        #expect(m.beta == 0 && m.alpha == 0)  // defined: zero covariance with a moving benchmark
        #expect(result.warnings.filter { $0.message.hasPrefix("undefined metrics") }.count == 1)
    }

    @Test("a benchmark with variance zero up to rounding: alpha and beta absent, flat warning")
    func roundingFlatBenchmark() throws {
        let dates = try Self.dates(20)
        let x = Self.bars("X", dates, dates.indices.map { 100 + Double($0 % 3) })
        // Constant growth: returns equal up to rounding (~1e-17 apart), not exactly.
        let bench = Self.bars("BENCH", dates, dates.indices.map { 100 * pow(1.0003, Double($0)) })
        let snapshot = MarketSnapshot(bars: ["X": x, "BENCH": bench], source: "test")
        let strategy = Strategy(
            name: "hold", positions: [Position(ticker: "X", weight: 1, entry: compare(series("close"), .greater, .number(0)))],
            fill: .close)
        let result = try Self.runAll(strategy, Self.settings(dates), snapshot)
        #expect(result.metrics.alpha.isNaN && result.metrics.beta.isNaN)
        #expect(result.warnings.contains { $0.message.contains("benchmark BENCH is flat") })
        #expect(result.warnings.contains { $0.message.contains("alpha and beta") })
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
