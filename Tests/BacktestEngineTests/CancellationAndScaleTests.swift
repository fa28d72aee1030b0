import BacktestCore
import BacktestModel
import Foundation
import Synchronization
import Testing

@testable import BacktestEngine

/// Issue 12, failure 2, inside the engine: a `CancellationFlag` stops the v2 engine, the
/// reference engine, the portfolio loop midway and a sweep between and within variants; and one
/// backtest's cost is linear in its positions (a day with thousands of entries no longer sums the
/// portfolio once per entry).
@Suite("Engine cancellation and positions scaling", .offCooperativePool)
struct CancellationAndScaleTests {
    static let tickers = ["AAPL", "MSFT", "XOM", "JPM", "JNJ", "PG", "KO", "INTC", "CSCO", "WMT"]
    static let settings = BacktestSettings(start: TradingDate(iso: "2019-01-02")!, end: TradingDate(iso: "2019-12-31")!)

    static func indicator(_ key: String) -> Operand {
        .series(SeriesRef(source: .indicator(try! IndicatorSpec(parsing: key))))
    }

    /// `count` positions over the ten tickers in turn, equal weights: every position of a ticker
    /// enters on the same days, so a fill day has up to count / 10 entries of that ticker.
    static func portfolio(_ count: Int, rebalance: Rebalance = .monthly) -> Strategy {
        Strategy(
            name: "\(count) positions",
            positions: (0..<count).map { p in
                Position(
                    ticker: tickers[p % tickers.count], weight: 1 / Double(count),
                    entry: .compare(lhs: indicator("sma:20"), op: .greater, rhs: indicator("sma:50")),
                    exit: .compare(lhs: indicator("rsi:14"), op: .greater, rhs: .number(70)))
            },
            fill: .nextOpen, commissionBps: 1, slippageBps: 1, rebalance: rebalance)
    }

    /// `history`: bars from 2018 only (the reference engine recomputes indicators over the whole
    /// history every day, so the comparison with it runs on a short one).
    static func prepared(_ strategy: Strategy, history: Bool = true) throws -> (PreparedMarket, IndicatorStore) {
        var snapshot = try TestData.snapshot(tickers + ["SPY"])
        if !history {
            snapshot = MarketSnapshot(
                bars: snapshot.bars.mapValues { $0.slice(TradingDate(iso: "2018-01-02")!...settings.end) }, source: snapshot.source)
        }
        let analysis = try StrategyAnalysis(strategy: strategy, settings: settings)
        let store = try IndicatorStore.compute(analysis.indicatorKeys, snapshot: snapshot)
        return (try PreparedMarket(settings: settings, snapshot: snapshot), store)
    }

    @Test func aCancelledFlagStopsBothEngines() throws {
        let strategy = Self.portfolio(20)
        let (market, store) = try Self.prepared(strategy)
        for engine in [VectorEngine() as any BacktestRunner, ReferenceEngine()] {
            let flag = CancellationFlag()
            flag.cancel()
            #expect(throws: BacktestError(.cancelled, "computation cancelled"), "\(engine.name)") {
                try engine.run(validated: strategy, market: market, indicators: store, cancellation: flag)
            }
            #expect(flag.wasObserved, "\(engine.name) looked at the flag")
        }
        // An unset flag changes nothing: the same result as without one, to the bit.
        let flag = CancellationFlag()
        let with = try VectorEngine().run(validated: strategy, market: market, indicators: store, cancellation: flag)
        let without = try VectorEngine().run(validated: strategy, market: market, indicators: store)
        #expect(with.equity.map(\.bitPattern) == without.equity.map(\.bitPattern))
        #expect(!flag.wasObserved)
    }

    @Test func indicatorComputationStopsOnTheFlag() throws {
        let flag = CancellationFlag()
        flag.cancel()
        var store = IndicatorStore()
        let snapshot = try TestData.snapshot(["AAPL", "SPY"])
        #expect(throws: BacktestError.self) {
            try Backtester().run(Self.portfolio(1), settings: Self.settings, snapshot: snapshot, indicators: &store, cancellation: flag)
        }
        #expect(flag.wasObserved)
        #expect(store.series.isEmpty, "no series computed after the cancel")
    }

    /// Cancelled by its own recorder at the first order, the loop stops at its next check: it
    /// records fewer days than the calendar has, instead of running to the end.
    @Test func thePortfolioLoopStopsMidway() throws {
        let strategy = Self.portfolio(10, rebalance: .none)
        let (market, store) = try Self.prepared(strategy)
        let signals = SignalVectors(market: market, indicators: store)
        var legs: [PortfolioLeg] = []
        for position in strategy.positions {
            legs.append(PortfolioLeg(
                position: position, ticker: try market.ticker(position.ticker, field: "ticker"),
                entry: try signals.evaluate(position.entry, ticker: position.ticker, field: "entry"),
                exit: try position.exit.map { (c: Condition) throws(BacktestError) in try signals.evaluate(c, ticker: position.ticker, field: "exit") }))
        }
        let flag = CancellationFlag()
        var loop = PortfolioLoop(strategy: strategy, market: market, legs: legs, recorder: CancellingRecorder(flag: flag))
        #expect(throws: BacktestError(.cancelled, "computation cancelled")) { try loop.run(cancellation: flag) }
        #expect(flag.wasObserved)
        #expect(loop.recorder.orders >= 1)
        #expect(loop.recorder.days < market.dates.count, "stopped at the check after the cancel: \(loop.recorder.days) of \(market.dates.count) days")

        // The same loop without a cancel runs every day.
        var full = PortfolioLoop(strategy: strategy, market: market, legs: legs, recorder: CancellingRecorder(flag: nil))
        try full.run(cancellation: CancellationFlag())
        #expect(full.recorder.days == market.dates.count)
    }

    @Test func aSweepStopsBetweenAndWithinVariants() throws {
        let variants = (0..<40).map { i in
            var strategy = Self.portfolio(10)
            strategy.name = "variant \(i)"
            return strategy
        }
        let (market, store) = try Self.prepared(variants[0])
        // Cancelled before it starts: no variant reported.
        let before = CancellationFlag()
        before.cancel()
        let none = Mutex(0)
        SweepRunner.run(variants, market: market, indicators: store, parallelism: 2, cancellation: before) { _, _ in
            none.withLock { $0 += 1 }
        }
        #expect(none.withLock { $0 } == 0)
        #expect(before.isCancelled)

        // Cancelled by the first result, on one worker: nothing after it starts.
        let flag = CancellationFlag()
        let reported = Mutex<[Int]>([])
        SweepRunner.run(variants, market: market, indicators: store, parallelism: 1, cancellation: flag) { index, outcome in
            reported.withLock { $0.append(index) }
            #expect((try? outcome.get()) != nil)
            flag.cancel()
        }
        #expect(reported.withLock { $0 } == [0])
    }

    /// 20,000 positions over a year: before the fix the entries of one fill day summed the
    /// portfolio once each (quadratic; minutes in a debug build); now the run completes and
    /// trades every position.
    @Test func manyPositionsComplete() throws {
        let strategy = Self.portfolio(20_000)
        let (market, store) = try Self.prepared(strategy)
        let result = try VectorEngine().run(validated: strategy, market: market, indicators: store)
        #expect(Set(result.orders.map(\.ticker)).count == Self.tickers.count)
        #expect(result.orders.count >= 20_000, "every position entered at least once")
        #expect(result.finalEquity.isFinite && result.finalEquity > 0)
    }

    /// The carried-forward equity sizes each entry as summing the portfolio again would: the v2
    /// engine agrees with the reference engine (which sums it per entry) on a portfolio whose
    /// fill days have many entries, with and without rebalancing, commission and slippage.
    @Test(arguments: [Rebalance.none, .monthly])
    func manyEntriesOnOneDayAgreeWithTheReference(rebalance: Rebalance) throws {
        let strategy = Self.portfolio(30, rebalance: rebalance)
        let (market, store) = try Self.prepared(strategy, history: false)
        let v2 = try VectorEngine().run(validated: strategy, market: market, indicators: store)
        let reference = try ReferenceEngine().run(validated: strategy, market: market, indicators: store)
        #expect(v2.orders.count == reference.orders.count)
        #expect(v2.orders.count > 30)
        for (a, b) in zip(v2.equity, reference.equity) {
            #expect(TestData.close(a, b, tolerance: 1e-9), "equity \(a) vs \(b)")
        }
        for (a, b) in zip(v2.orders, reference.orders) {
            #expect(a.date == b.date && a.ticker == b.ticker && a.side == b.side)
            #expect(TestData.close(a.quantity, b.quantity, tolerance: 1e-9), "quantity \(a) vs \(b)")
        }
    }
}

/// Counts days and orders, and cancels `flag` at the first order.
private struct CancellingRecorder: PortfolioRecorder {
    let flag: CancellationFlag?
    var days = 0
    var orders = 0

    mutating func days(_ days: Range<Int>, equity: (Int) -> Double) { self.days += days.count }
    mutating func flatDays(_ days: Range<Int>, equity: Double) { self.days += days.count }
    mutating func order(leg: Int, day t: Int, side: OrderSide, quantity: Double, price: Double, commission: Double, reason: OrderReason) {
        orders += 1
        flag?.cancel()
    }
    mutating func closedTrade(profit: Double) {}
}
