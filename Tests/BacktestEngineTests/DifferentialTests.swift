import BacktestCore
import BacktestModel
import Foundation
import Testing

@testable import BacktestEngine

/// Builds conditions tersely from strings: "sma:20", "close", numbers.
func series(_ text: String, _ ticker: String? = nil) -> Operand {
    let source: SeriesSource = PriceField(rawValue: text).map { .field($0) } ?? .indicator(try! IndicatorSpec(parsing: text))
    return .series(SeriesRef(ticker: ticker, source: source))
}

func compare(_ lhs: Operand, _ op: Comparison, _ rhs: Operand) -> Condition {
    .compare(lhs: lhs, op: op, rhs: rhs)
}

@Suite("v2 engine against the reference engine", .offCooperativePool)
struct DifferentialTests {
    /// Short history (2011 on) keeps the quadratic reference engine fast in debug builds. MSFT
    /// loses three bars in 2013 to exercise the missing-bar policy; FB lists in May 2012, after
    /// the start. Loaded once; a loading failure (no ../shared) fails each test, not the process.
    static let loadedSnapshot = Result<MarketSnapshot, any Error> {
        var bars: [String: DailyBars] = [:]
        let range = TestData.date("2011-01-03")...TestData.date("2014-12-31")
        for ticker in ["AAPL", "MSFT", "XOM", "SPY", "FB", "JPM"] {
            bars[ticker] = try TestData.bars(ticker).slice(range)
        }
        let msft = bars["MSFT"]!
        let removed: Set<TradingDate> = [TestData.date("2013-03-05"), TestData.date("2013-03-06"), TestData.date("2013-07-10")]
        let kept = msft.dates.indices.filter { !removed.contains(msft.dates[$0]) }
        bars["MSFT"] = DailyBars(
            symbol: "MSFT", dates: kept.map { msft.dates[$0] }, open: kept.map { msft.open[$0] },
            high: kept.map { msft.high[$0] }, low: kept.map { msft.low[$0] }, close: kept.map { msft.close[$0] },
            volume: kept.map { msft.volume[$0] })
        return MarketSnapshot(bars: bars, source: "files")
    }

    static let settings = BacktestSettings(start: TestData.date("2012-03-01"), end: TestData.date("2014-12-31"))

    static let strategies: [Strategy] = [
        Strategy(name: "sma cross close", positions: [
            Position(ticker: "AAPL", weight: 1, entry: compare(series("sma:20"), .crossesAbove, series("sma:50")),
                     exit: compare(series("sma:20"), .crossesBelow, series("sma:50"))),
        ], fill: .close),
        Strategy(name: "sma cross next open with costs", positions: [
            Position(ticker: "AAPL", weight: 1, entry: compare(series("sma:10"), .greater, series("sma:30"))),
        ], fill: .nextOpen, commissionBps: 10, slippageBps: 5),
        Strategy(name: "rsi mean reversion", positions: [
            Position(ticker: "XOM", weight: 1, entry: compare(series("rsi:14"), .less, .number(40)),
                     exit: compare(series("rsi:14"), .greater, .number(60))),
        ], fill: .nextOpen),
        Strategy(name: "two tickers monthly rebalance", positions: [
            Position(ticker: "AAPL", weight: 0.5, entry: compare(series("close"), .greater, series("sma:50"))),
            Position(ticker: "MSFT", weight: 0.5, entry: compare(series("close"), .greater, series("sma:50"))),
        ], fill: .close, commissionBps: 5, rebalance: .monthly),
        Strategy(name: "regime filter on SPY", positions: [
            Position(ticker: "JPM", weight: 1, entry: .all([
                compare(series("close"), .greater, series("ema:20")),
                compare(series("close", "SPY"), .greater, series("sma:200", "SPY")),
            ])),
        ], fill: .nextOpen, commissionBps: 3, slippageBps: 3),
        Strategy(name: "any and not, weekly", positions: [
            Position(ticker: "XOM", weight: 0.7, entry: .any([
                compare(series("macd:12,26,9:hist"), .greater, .number(0)),
                .not(compare(series("rsi:14"), .greaterOrEqual, .number(45))),
            ])),
        ], fill: .close, rebalance: .weekly),
        Strategy(name: "bollinger", positions: [
            Position(ticker: "AAPL", weight: 1, entry: compare(series("close"), .lessOrEqual, series("bbands:20,2:lower")),
                     exit: compare(series("close"), .greaterOrEqual, series("bbands:20,2:middle"))),
        ], fill: .close, slippageBps: 10),
        Strategy(name: "listed after start, daily rebalance", positions: [
            Position(ticker: "FB", weight: 0.5, entry: compare(series("close"), .greater, series("sma:10"))),
            Position(ticker: "SPY", weight: 0.5, entry: compare(series("close"), .greater, series("sma:50"))),
        ], fill: .nextOpen, commissionBps: 2, rebalance: .daily),
        Strategy(name: "stochastic on a ticker with gaps", positions: [
            Position(ticker: "MSFT", weight: 1, entry: compare(series("stoch:14,3,3:k"), .crossesAbove, series("stoch:14,3,3:d")),
                     exit: compare(series("stoch:14,3,3:k"), .greater, .number(80))),
        ], fill: .nextOpen),
        Strategy(name: "adx trend, daily rebalance", positions: [
            Position(ticker: "AAPL", weight: 0.9, entry: .all([
                compare(series("adx:14"), .greater, .number(20)),
                compare(series("close"), .greater, series("wma:20")),
            ])),
        ], fill: .close, commissionBps: 20, rebalance: .daily),
        Strategy(name: "three legs on return statistics", positions: [
            Position(ticker: "AAPL", weight: 0.3, entry: compare(series("roc:10"), .greater, .number(0))),
            Position(ticker: "MSFT", weight: 0.3, entry: compare(series("return_mean:20"), .greater, .number(0))),
            Position(ticker: "XOM", weight: 0.4, entry: compare(series("cumulative_return:60"), .greater, .number(0)),
                     exit: compare(series("max_drawdown:60"), .greater, .number(0.08))),
        ], fill: .close, slippageBps: 2, rebalance: .weekly),
        Strategy(name: "breakout on highs and lows", positions: [
            Position(ticker: "JPM", weight: 1, entry: compare(series("close"), .greaterOrEqual, series("highest:20")),
                     exit: compare(series("close"), .lessOrEqual, series("lowest:10"))),
        ], fill: .nextOpen, commissionBps: 1),
        Strategy(name: "leveraged pair", positions: [
            Position(ticker: "AAPL", weight: 0.8, entry: compare(series("close"), .greater, series("ema:50"))),
            Position(ticker: "JPM", weight: 0.7, entry: compare(series("close"), .greater, series("ema:50"))),
        ], fill: .nextOpen, commissionBps: 5, slippageBps: 5, rebalance: .weekly, allowLeverage: true),
        // Issue 15: exits by price and time, shorts, sizing.
        Strategy(name: "stop loss and take profit, close", positions: [
            Position(ticker: "AAPL", weight: 1, entry: compare(series("sma:10"), .greater, series("sma:30")),
                     exits: PriceExits(stopLoss: 0.03, takeProfit: 0.05)),
        ], fill: .close, commissionBps: 5, slippageBps: 3),
        Strategy(name: "trailing stop and time exit, next open", positions: [
            Position(ticker: "JPM", weight: 0.8, entry: compare(series("close"), .greater, series("ema:20")),
                     exits: PriceExits(trailingStop: 0.04, maxBars: 15)),
        ], fill: .nextOpen, slippageBps: 5),
        Strategy(name: "ATR stops on a ticker with gaps", positions: [
            Position(ticker: "MSFT", weight: 1, entry: compare(series("close"), .greater, series("sma:20")),
                     exits: PriceExits(stopLoss: 2, takeProfit: 3, trailingStop: 2.5, atrPeriod: 14)),
        ], fill: .nextOpen, commissionBps: 2),
        Strategy(name: "short only with stops", positions: [
            Position(ticker: "XOM", weight: 0.9, entry: compare(series("sma:10"), .less, series("sma:30")), direction: .short,
                     exits: PriceExits(stopLoss: 0.04, takeProfit: 0.06, trailingStop: 0.05)),
        ], fill: .close, commissionBps: 5, slippageBps: 5),
        Strategy(name: "long short book, weekly rebalance", positions: [
            Position(ticker: "AAPL", weight: 0.5, entry: compare(series("close"), .greater, series("sma:50"))),
            Position(ticker: "XOM", weight: 0.5, entry: compare(series("close"), .less, series("sma:50")), direction: .short,
                     exits: PriceExits(stopLoss: 0.05, maxBars: 20)),
        ], fill: .nextOpen, commissionBps: 3, slippageBps: 2, rebalance: .weekly),
        Strategy(name: "cash, shares and risk sizing", positions: [
            Position(ticker: "AAPL", weight: 1, entry: compare(series("close"), .greater, series("sma:20")), sizing: .cash, size: 30_000,
                     exits: PriceExits(takeProfit: 0.1)),
            Position(ticker: "SPY", weight: 1, entry: compare(series("rsi:14"), .less, .number(45)),
                     exit: compare(series("rsi:14"), .greater, .number(60)), sizing: .shares, size: 150),
            Position(ticker: "JPM", weight: 1, entry: compare(series("close"), .greater, series("ema:10")), sizing: .risk, size: 0.01,
                     exits: PriceExits(stopLoss: 0.04, trailingStop: 0.06)),
        ], fill: .close, commissionBps: 4, slippageBps: 1),
        Strategy(name: "risk sizing on ATR stops, short, leverage", positions: [
            Position(ticker: "FB", weight: 1, entry: compare(series("close"), .less, series("sma:20")), direction: .short,
                     sizing: .risk, size: 0.02, exits: PriceExits(stopLoss: 1.5, atrPeriod: 10, maxBars: 10)),
            Position(ticker: "AAPL", weight: 0.8, entry: compare(series("close"), .greater, series("sma:20"))),
        ], fill: .nextOpen, commissionBps: 2, slippageBps: 2, allowLeverage: true),
        // Many entries on the same days, longs and shorts, every sizing: the engine carries the
        // equity (and the shorts' value) from entry to entry where the reference sums every leg
        // again (summing made a day of 60,000 short entries take 11 s; issue 12). With leverage:
        // without it these entries exhaust the free cash, and at exactly none left the sums'
        // rounding (1e-12) decides whether a dust order of 1e-14 shares is made, in either engine.
        Strategy(name: "many entries a day: shorts, longs, every sizing", positions: (0..<40).map { i in
            let sizing: SizingMode = [.weight, .risk, .cash, .shares][i % 4]
            return Position(
                ticker: ["AAPL", "MSFT", "XOM", "SPY", "JPM"][i % 5], weight: 0.02,
                entry: compare(series(i % 3 == 0 ? "sma:10" : "close"), .greater, series(i % 3 == 0 ? "sma:30" : "sma:5")),
                direction: i % 2 == 0 ? .short : .long, sizing: sizing,
                size: [0, 0.004, 2_000, 15][i % 4],
                exits: PriceExits(stopLoss: 0.05, takeProfit: i % 3 == 0 ? 0.08 : nil, maxBars: i % 5 == 0 ? 12 : nil))
        }, fill: .close, commissionBps: 3, slippageBps: 2, allowLeverage: true),
    ]

    @Test("varied strategies give equal results", arguments: strategies.indices)
    func equalResults(index: Int) throws {
        let strategy = Self.strategies[index]
        let analysis = try StrategyAnalysis(strategy: strategy, settings: Self.settings)
        let snapshot = try Self.loadedSnapshot.get()
        let store = try IndicatorStore.compute(analysis.indicatorKeys, snapshot: snapshot)
        let v2 = try VectorEngine().run(strategy, settings: Self.settings, snapshot: snapshot, indicators: store)
        let reference = try ReferenceEngine().run(strategy, settings: Self.settings, snapshot: snapshot, indicators: IndicatorStore())
        #expect(v2.stats.engine == "v2")
        #expect(reference.stats.engine == "reference")
        #expect(v2.orders.count >= 2, "\(strategy.name) should trade")
        Self.expectEqual(v2, reference, strategy.name)
    }

    @Test("the strategies of issue 15 exercise every exit reason, shorts and every sizing")
    func coverage() throws {
        let snapshot = try Self.loadedSnapshot.get()
        var reasons: Set<OrderReason> = []
        for strategy in Self.strategies where !strategy.positions.allSatisfy(\.isPlain) {
            let analysis = try StrategyAnalysis(strategy: strategy, settings: Self.settings)
            let store = try IndicatorStore.compute(analysis.indicatorKeys, snapshot: snapshot)
            let result = try VectorEngine().run(strategy, settings: Self.settings, snapshot: snapshot, indicators: store)
            reasons.formUnion(result.orders.map(\.reason))
        }
        #expect(reasons == Set(OrderReason.allCases), "missing: \(Set(OrderReason.allCases).subtracting(reasons))")
        let positions = Self.strategies.flatMap(\.positions)
        #expect(Set(positions.map(\.sizing)) == Set(SizingMode.allCases))
        #expect(positions.contains { $0.direction == .short && $0.exits.atrPeriod != nil })
    }

    static func expectEqual(_ a: BacktestResult, _ b: BacktestResult, _ name: String) {
        func near(_ x: Double, _ y: Double) -> Bool { TestData.close(x, y, tolerance: 1e-9) }
        #expect(a.dates == b.dates, "\(name): dates")
        #expect(a.equity.count == b.equity.count && zip(a.equity, b.equity).allSatisfy { near($0, $1) }, "\(name): equity")
        #expect(zip(a.benchmark, b.benchmark).allSatisfy { near($0, $1) }, "\(name): benchmark")
        #expect(a.orders.count == b.orders.count, "\(name): order count \(a.orders.count) vs \(b.orders.count)")
        for (x, y) in zip(a.orders, b.orders) {
            #expect(x.date == y.date && x.ticker == y.ticker && x.side == y.side && x.reason == y.reason, "\(name): order \(x) vs \(y)")
            #expect(near(x.quantity, y.quantity) && near(x.price, y.price) && near(x.commission, y.commission), "\(name): order \(x) vs \(y)")
        }
        let (m, n) = (a.metrics, b.metrics)
        let pairs: [(String, Double, Double)] = [
            ("total return", m.totalReturn, n.totalReturn), ("cagr", m.cagr, n.cagr), ("volatility", m.volatility, n.volatility),
            ("sharpe", m.sharpe, n.sharpe), ("sortino", m.sortino, n.sortino), ("max drawdown", m.maxDrawdown, n.maxDrawdown),
            ("calmar", m.calmar, n.calmar), ("alpha", m.alpha, n.alpha), ("beta", m.beta, n.beta), ("win rate", m.winRate, n.winRate),
            ("profit factor", m.profitFactor, n.profitFactor), ("exposure", m.exposure, n.exposure),
        ]
        for (metric, x, y) in pairs { #expect(near(x, y), "\(name): \(metric) \(x) vs \(y)") }
        #expect(m.tradeCount == n.tradeCount && m.maxDrawdownDuration == n.maxDrawdownDuration, "\(name): counts")
        #expect(a.warnings == b.warnings, "\(name): warnings")
    }
}
