import BacktestCore
import BacktestModel
import BacktestTestSupport
import Foundation
import Testing

@testable import BacktestEngine

/// The cases of Fixtures/vectorbt-stops.json (scripts/generate-vectorbt-stops-fixtures.py:
/// vectorbt 1.2 `from_signals` with OHLC stops, shorts with locked cash, sizing; empyrical
/// metrics).
enum StopsReferenceCase {
    struct Expected: Decodable {
        var dates: [String]
        var equity: [Double]
        var final_equity: Double
        var orders: [ReferenceBacktest.ExpectedOrder]
        var metrics: [String: Double]
        var counts: [String: Int]
    }

    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/vectorbt-stops.json")

    static func all() throws -> [ReferenceCase<Expected>] {
        try ReferenceCase.load(fixture, listKey: "cases")
    }

    static let ids: [String] = (try? all().map(\.id)) ?? []
}

@Suite("Stops, shorts and sizing against vectorbt 1.2 (Fixtures/vectorbt-stops.json)", .offCooperativePool)
struct StopsShortsSizingReferenceTests {
    static let tolerance = 1e-6

    @Test("the fixture covers every feature of issue 15")
    func coverage() throws {
        let cases = try StopsReferenceCase.all()
        #expect(cases.count >= 16)
        let positions = cases.flatMap(\.file.strategy.positions)
        let fills = Set(cases.map(\.file.strategy.fill))
        #expect(fills == [.close, .nextOpen])
        for sizing in SizingMode.allCases { #expect(positions.contains { $0.sizing == sizing }, "sizing \(sizing)") }
        #expect(positions.contains { $0.direction == .short })
        #expect(cases.contains { c in Set(c.file.strategy.positions.map(\.direction)).count == 2 }, "a long/short book")
        #expect(positions.contains { $0.exits.atrPeriod != nil })
        let reasons = Set(cases.flatMap { $0.expected.orders.map(\.reason) })
        #expect(reasons.isSuperset(of: ["entry", "signal", "stop_loss", "take_profit", "trailing_stop"]))
        for reason in ["stop_loss", "take_profit", "trailing_stop"] {
            for fill in [FillTiming.close, .nextOpen] {
                #expect(cases.contains { c in c.file.strategy.fill == fill && c.expected.orders.contains { $0.reason == reason } }, "\(reason) with \(fill)")
            }
        }
        #expect(cases.contains { $0.expected.counts["gap_fills", default: 0] > 0 }, "a gap through a stop")
        #expect(cases.contains { $0.expected.counts["stop_and_target_bars", default: 0] > 0 }, "stop and target in one bar")
        #expect(cases.contains { $0.file.strategy.commissionBps > 0 && $0.file.strategy.slippageBps > 0 }, "costs")
    }

    @Test("v2 and reference engines reproduce equity, orders with reasons and metrics", arguments: StopsReferenceCase.ids)
    func reproduce(id: String) throws {
        let reference = try #require(try StopsReferenceCase.all().first { $0.id == id })
        let strategy = reference.file.strategy
        let settings = reference.settings
        let analysis = try StrategyAnalysis(strategy: strategy, settings: settings)
        let snapshot = try TestData.snapshot(analysis.tickers)
        let store = try IndicatorStore.compute(analysis.indicatorKeys, snapshot: snapshot)
        let v2 = try VectorEngine().run(strategy, settings: settings, snapshot: snapshot, indicators: store)
        try Self.check(v2, strategy: strategy, against: reference.expected, engine: "v2")
        // The sweep's summary of the same strategy equals the full result's to the bit.
        let market = try PreparedMarket(settings: settings, snapshot: snapshot)
        let summary = try SweepRunner.summaries([strategy], market: market, indicators: store, parallelism: 1)[0].get()
        #expect(summary.metrics == v2.metrics, "sweep metrics")
        #expect(summary.finalEquity == v2.finalEquity, "sweep final equity")
        #expect(summary.orderCount == v2.orders.count, "sweep order count")
    }

    /// The quadratic reference engine on a few cases (the differential test compares it with v2
    /// on more): stops with next-open fills, a short, a long/short book, ATR risk sizing, stop
    /// and target in one bar.
    @Test("the reference engine reproduces some of the cases too", arguments: [
        "stop_loss_AAPL_next_open", "short_only_XOM_close", "long_short_book_next_open", "sizing_risk_atr_CVX_next_open",
        "stop_and_target_one_bar_AMD_close",
    ])
    func referenceEngine(id: String) throws {
        let reference = try #require(try StopsReferenceCase.all().first { $0.id == id })
        let strategy = reference.file.strategy
        let settings = reference.settings
        let analysis = try StrategyAnalysis(strategy: strategy, settings: settings)
        let snapshot = try TestData.snapshot(analysis.tickers)
        let result = try ReferenceEngine().run(strategy, settings: settings, snapshot: snapshot, indicators: IndicatorStore())
        try Self.check(result, strategy: strategy, against: reference.expected, engine: "reference")
    }

    static func check(_ result: BacktestResult, strategy: Strategy, against expected: StopsReferenceCase.Expected, engine: String) throws {
        try #require(result.dates.map(\.iso) == expected.dates)
        func near(_ a: Double, _ b: Double) -> Bool { TestData.close(a, b, tolerance: tolerance) }
        let mismatch = zip(result.equity, expected.equity).enumerated().first { !near($0.element.0, $0.element.1) }
        #expect(mismatch == nil, "\(engine): equity differs on \(String(describing: mismatch.map { expected.dates[$0.offset] })): \(String(describing: mismatch?.element))")
        #expect(near(result.finalEquity, expected.final_equity))
        // The fixture lists orders by date, then position (vectorbt executes a bar's sells
        // first; the engine its exits first): compare in that order (at most one order per
        // position and day).
        let legIndex = Dictionary(uniqueKeysWithValues: strategy.positions.enumerated().map { ($1.ticker, $0) })
        let orders = result.orders.enumerated().sorted {
            ($0.element.date, legIndex[$0.element.ticker]!, $0.offset) < ($1.element.date, legIndex[$1.element.ticker]!, $1.offset)
        }.map(\.element)
        try #require(orders.count == expected.orders.count, "\(engine): \(orders.count) orders vs \(expected.orders.count)")
        for (order, reference) in zip(orders, expected.orders) {
            #expect(order.date.iso == reference.date && order.ticker == reference.ticker, "\(engine): order \(order) vs \(reference)")
            #expect(order.side.rawValue == reference.side, "\(engine): side on \(reference.date)")
            #expect(order.reason.rawValue == reference.reason, "\(engine): reason on \(reference.date): \(order.reason) vs \(reference.reason ?? "none")")
            #expect(near(order.quantity, reference.quantity), "\(engine): quantity on \(reference.date)")
            #expect(near(order.price, reference.price), "\(engine): price on \(reference.date)")
            #expect(TestData.close(order.commission, reference.commission, tolerance: tolerance), "\(engine): commission on \(reference.date)")
        }
        let actual = result.metrics.byReferenceName
        for (name, value) in expected.metrics {
            let mine = try #require(actual[name], "metric \(name) not computed")
            #expect(near(mine, value), "\(engine): \(name): \(mine) vs \(value)")
        }
    }
}

@Suite("Time exits (max_bars), which vectorbt 1.2 has no counterpart for", .offCooperativePool)
struct TimeExitTests {
    /// Always in the market (close > 0), leaving after 3 bars: the exit fills at the fill point
    /// 3 bars after the entry's, and the leg re-enters at the next fill point after that.
    @Test("exit 3 bars after the entry, at the fill point of the fill mode", arguments: [FillTiming.close, .nextOpen])
    func maxBars(fill: FillTiming) throws {
        let strategy = Strategy(positions: [
            Position(ticker: "MSFT", weight: 1, entry: compare(series("close"), .greater, .number(0)), direction: .short,
                     exits: PriceExits(maxBars: 3)),
        ], fill: fill, commissionBps: 2)
        let settings = BacktestSettings(start: TestData.date("2015-03-02"), end: TestData.date("2015-03-31"))
        let snapshot = try TestData.snapshot(["MSFT", "SPY"])
        for engine in [VectorEngine(), ReferenceEngine()] as [any BacktestRunner] {
            let result = try engine.run(strategy, settings: settings, snapshot: snapshot, indicators: IndicatorStore())
            let days = result.orders.map { result.dates.firstIndex(of: $0.date)! }
            // close: in on day 0, out on 3, in on 4 (the bar after), out on 7, ...;
            // next_open: in on 1, out on 4, in on 5, ...
            let first = fill == .close ? 0 : 1
            let expected = (0..<days.count).map { k in first + (k / 2) * 4 + (k % 2) * 3 }
            #expect(days == expected, "\(engine.name) \(fill)")
            #expect(result.orders.enumerated().allSatisfy { k, order in
                order.reason == (k % 2 == 0 ? .entry : .time) && order.side == (k % 2 == 0 ? .sell : .buy)
            }, "\(engine.name) \(fill)")
            let bars = snapshot.bars["MSFT"]!
            for order in result.orders where order.reason == .time {
                let i = bars.index(of: order.date)!
                #expect(order.price == (fill == .close ? bars.close[i] : bars.open[i]))
            }
        }
    }
}
