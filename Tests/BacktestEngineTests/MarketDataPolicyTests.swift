import BacktestCore
import BacktestModel
import Testing

@testable import BacktestEngine

@Suite("Missing bars, listings and the benchmark")
struct MarketDataPolicyTests {
    static let alwaysHold = compare(series("close"), .greater, .number(0))

    static func run(_ strategy: Strategy, _ settings: BacktestSettings, _ snapshot: MarketSnapshot) throws -> BacktestResult {
        try VectorEngine().run(strategy, settings: settings, snapshot: snapshot, indicators: IndicatorStore())
    }

    @Test("a ticker listed after the start trades from its first bar, with a warning naming the range")
    func listedAfterStart() throws {
        let settings = BacktestSettings(start: TestData.date("2012-01-03"), end: TestData.date("2012-12-31"))
        let strategy = Strategy(positions: [Position(ticker: "FB", weight: 1, entry: Self.alwaysHold)], fill: .close)
        let result = try Self.run(strategy, settings, try TestData.snapshot(["FB", "SPY"]))
        #expect(result.warnings.contains { $0.message.contains("FB has no bars before 2012-05-18") && $0.message.contains("2012-01-03") && $0.kind == .startsLate && $0.tickers == ["FB"] })
        #expect(result.orders.first?.date == TestData.date("2012-05-18"))
        let listing = try #require(result.dates.firstIndex(of: TestData.date("2012-05-18")))
        #expect(result.equity[..<listing].allSatisfy { $0 == settings.initialCapital })
        #expect(result.dates.first == settings.start)
    }

    @Test("a range entirely before a ticker existed: the position never trades, with a warning (issue 14 item 2)")
    func rangeBeforeListing() throws {
        let settings = BacktestSettings(start: TestData.date("2010-01-04"), end: TestData.date("2011-12-30"))
        let strategy = Strategy(positions: [
            Position(ticker: "AAPL", weight: 0.5, entry: Self.alwaysHold),
            Position(ticker: "FB", weight: 0.5, entry: Self.alwaysHold),
        ], fill: .close)
        let snapshot = try TestData.snapshot(["AAPL", "FB", "SPY"])
        let v2 = try VectorEngine().run(strategy, settings: settings, snapshot: snapshot, indicators: IndicatorStore())
        let reference = try ReferenceEngine().run(strategy, settings: settings, snapshot: snapshot, indicators: IndicatorStore())
        DifferentialTests.expectEqual(v2, reference, "late listing")
        #expect(v2.warnings.contains { $0.message.contains("FB has no bars in 2010-01-04...2011-12-30") && $0.message.contains("2012-05-18") && $0.message.contains("never trades") }, "\(v2.warnings)")
        #expect(v2.orders.allSatisfy { $0.ticker == "AAPL" } && v2.orders.count == 1)
        // Day loop: half the capital in AAPL at the first close, the other half stays cash.
        let aapl = try TestData.bars("AAPL")
        let first = aapl.close[aapl.index(of: TestData.date("2010-01-04"))!]
        let last = aapl.close[aapl.index(of: TestData.date("2011-12-30"))!]
        #expect(abs(v2.equity.last! - (50_000 + 50_000 * last / first)) < 1e-6)
    }

    @Test("a ticker missing from the snapshot is NOT_FOUND, not a crash")
    func tickerNotInSnapshot() throws {
        let settings = BacktestSettings(start: TestData.date("2010-01-04"), end: TestData.date("2010-12-31"))
        let strategy = Strategy(positions: [Position(ticker: "AAPL", weight: 1, entry: compare(series("close", "IBM"), .greater, .number(0)))])
        let snapshot = try TestData.snapshot(["AAPL", "SPY"])
        #expect(throws: BacktestError.self) { try Self.run(strategy, settings, snapshot) }
        do { _ = try VectorEngine().run(strategy, settings: settings, snapshot: snapshot, indicators: IndicatorStore()) } catch {
            #expect(error.code == .notFound && error.message.contains("IBM"))
        }
    }

    /// MSFT without the bars of 2013-03-05 and 2013-03-06.
    static func gappySnapshot() throws -> MarketSnapshot {
        var snapshot = try TestData.snapshot(["MSFT", "SPY"])
        let msft = snapshot.bars["MSFT"]!
        let gap: Set<TradingDate> = [TestData.date("2013-03-05"), TestData.date("2013-03-06")]
        var kept = DailyBars(symbol: "MSFT")
        for i in 0..<msft.count where !gap.contains(msft.dates[i]) {
            kept.append(date: msft.dates[i], open: msft.open[i], high: msft.high[i], low: msft.low[i], close: msft.close[i], volume: msft.volume[i])
        }
        snapshot.bars["MSFT"] = kept
        return snapshot
    }

    @Test("a halt: no trade, no implicit exit, valued at the last close, warned")
    func halt() throws {
        let snapshot = try Self.gappySnapshot()
        let settings = BacktestSettings(start: TestData.date("2013-02-01"), end: TestData.date("2013-03-29"))
        let strategy = Strategy(positions: [Position(ticker: "MSFT", weight: 1, entry: Self.alwaysHold)], fill: .close)
        let result = try Self.run(strategy, settings, snapshot)
        #expect(result.orders.count == 1, "a missing bar must not trigger the implicit exit")
        #expect(result.warnings.contains { $0.message.contains("MSFT has no bar on 2 trading day(s)") && $0.message.contains("2013-03-05") })
        #expect(result.warnings.contains { $0.kind == .missingBars && $0.tickers == ["MSFT"] && $0.dates.count == 2 && $0.dates.first == TradingDate(iso: "2013-03-05") })
        let monday = try #require(result.dates.firstIndex(of: TestData.date("2013-03-04")))
        let msft = snapshot.bars["MSFT"]!
        let close = msft.close[try #require(msft.index(of: TestData.date("2013-03-04")))]
        let shares = result.orders[0].quantity
        let cash = settings.initialCapital - shares * result.orders[0].price
        #expect(result.dates[monday + 1] == TestData.date("2013-03-05"))
        #expect(TestData.close(result.equity[monday + 1], cash + shares * close, tolerance: 1e-12))
        #expect(TestData.close(result.equity[monday + 2], cash + shares * close, tolerance: 1e-12))
        #expect(result.equity.allSatisfy { $0.isFinite && $0 > 0 })
    }

    @Test("a next_open order due on a missing bar is dropped with a warning")
    func droppedOrder() throws {
        let snapshot = try Self.gappySnapshot()
        let settings = BacktestSettings(start: TestData.date("2013-03-04"), end: TestData.date("2013-03-15"))
        let strategy = Strategy(positions: [Position(ticker: "MSFT", weight: 1, entry: Self.alwaysHold)], fill: .nextOpen)
        for engine in [VectorEngine() as any BacktestRunner, ReferenceEngine()] {
            let result = try engine.run(strategy, settings: settings, snapshot: snapshot, indicators: IndicatorStore())
            // Signal on 03-04 fills on 03-05 (no bar: dropped); 03-05 and 03-06 give no signal;
            // the signal of 03-07 fills at 03-08's open.
            #expect(result.orders.map(\.date) == [TestData.date("2013-03-08")], "\(engine.name)")
            #expect(result.warnings.contains { $0.message.contains("1 MSFT order(s) not filled") && $0.message.contains("2013-03-05") && $0.kind == .ordersNotFilled }, "\(engine.name)")
        }
    }

    static func flatSnapshot(days: Int) throws -> MarketSnapshot {
        var snapshot = try TestData.snapshot(["AAPL"])
        let aapl = snapshot.bars["AAPL"]!
        let from = aapl.lowerBound(TestData.date("2015-01-02"))
        var flat = DailyBars(symbol: "FLAT")
        for i in from..<(from + days) {
            flat.append(date: aapl.dates[i], open: 100, high: 100, low: 100, close: 100, volume: 1000)
        }
        snapshot.bars["FLAT"] = flat
        return snapshot
    }

    @Test("a flat benchmark is reported in the result")
    func flatBenchmark() throws {
        let snapshot = try Self.flatSnapshot(days: 60)
        var settings = BacktestSettings(start: TestData.date("2015-01-02"), end: TestData.date("2015-03-31"))
        settings.benchmark = "FLAT"
        let strategy = Strategy(positions: [Position(ticker: "AAPL", weight: 1, entry: Self.alwaysHold)])
        let result = try Self.run(strategy, settings, snapshot)
        #expect(result.warnings.contains { $0.message.contains("benchmark FLAT is flat") && $0.kind == .benchmarkFlat })
        // No benchmark variance: alpha and beta are undefined (absent), with a warning (issue 14 item 7).
        #expect(result.metrics.beta.isNaN && result.metrics.alpha.isNaN)
        #expect(result.warnings.contains { $0.kind == .metricsUndefined && $0.message.contains("alpha and beta (the benchmark's daily returns have no variance)") })

        var spySettings = settings
        spySettings.benchmark = "SPY"
        let normal = try Self.run(strategy, spySettings, try TestData.snapshot(["AAPL", "SPY"]))
        #expect(!normal.warnings.contains { $0.message.contains("flat") || $0.kind == .benchmarkFlat })
        #expect(normal.benchmark.last != normal.benchmark.first)
    }

    @Test("a single-day range warns that the benchmark has no variance")
    func singleDay() throws {
        let settings = BacktestSettings(start: TestData.date("2015-01-02"), end: TestData.date("2015-01-02"))
        let strategy = Strategy(positions: [Position(ticker: "AAPL", weight: 1, entry: Self.alwaysHold)], fill: .close)
        let result = try Self.run(strategy, settings, try TestData.snapshot(["AAPL", "SPY"]))
        #expect(result.dates.count == 1 && result.equity.count == 1)
        #expect(result.warnings.contains { $0.message.contains("single day") && $0.kind == .benchmarkFlat })
    }

    @Test("a benchmark without bars in the range is NOT_FOUND on the dates")
    func benchmarkOutOfRange() throws {
        let settings = BacktestSettings(start: TestData.date("1990-01-02"), end: TestData.date("1995-01-02"))
        let strategy = Strategy(positions: [Position(ticker: "AAPL", weight: 1, entry: Self.alwaysHold)])
        let snapshot = try TestData.snapshot(["AAPL", "SPY"])
        do {
            _ = try VectorEngine().run(strategy, settings: settings, snapshot: snapshot, indicators: IndicatorStore())
            Issue.record("ran without benchmark data")
        } catch {
            #expect(error.code == .notFound && error.field == "settings.start_date")
            #expect(error.message.contains("1999-11-01"))
        }
    }
}
