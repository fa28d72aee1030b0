import BacktestCore
import BacktestModel
import Testing

@testable import BacktestEngine

@Suite("Validation and analysis")
struct ValidationTests {
    static let settings = BacktestSettings(start: TestData.date("2010-01-04"), end: TestData.date("2012-12-31"))
    static let trend = compare(series("close"), .greater, series("sma:50"))

    static func field(of strategy: Strategy, settings: BacktestSettings = settings) -> String? {
        do {
            try Validation.validate(strategy, settings: settings)
            return nil
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(!error.message.isEmpty)
            return error.field
        }
    }

    @Test("invalid strategies name the offending field")
    func fieldPaths() {
        let ok = Position(ticker: "AAPL", weight: 0.5, entry: Self.trend)
        func with(_ position: Position) -> Strategy { Strategy(positions: [ok, position]) }
        #expect(Self.field(of: Strategy(positions: [ok])) == nil)
        #expect(Self.field(of: Strategy(positions: [])) == "strategy.positions")
        #expect(Self.field(of: with(Position(ticker: "MSFT", weight: 0, entry: Self.trend))) == "strategy.positions[1].weight")
        #expect(Self.field(of: with(Position(ticker: "MSFT", weight: 1.5, entry: Self.trend))) == "strategy.positions[1].weight")
        #expect(Self.field(of: with(Position(ticker: "MSFT", weight: .nan, entry: Self.trend))) == "strategy.positions[1].weight")
        #expect(Self.field(of: with(Position(ticker: "msft?", weight: 0.5, entry: Self.trend))) == "strategy.positions[1].ticker")
        #expect(Self.field(of: with(Position(ticker: "MSFT", weight: 0.6, entry: Self.trend))) == "strategy.positions")
        var leveraged = with(Position(ticker: "MSFT", weight: 0.6, entry: Self.trend))
        leveraged.allowLeverage = true
        #expect(Self.field(of: leveraged) == nil)
        let unknown = compare(.series(SeriesRef(source: .indicator(IndicatorSpec(type: "smaa", params: [5])))), .greater, .number(1))
        #expect(Self.field(of: with(Position(ticker: "MSFT", weight: 0.5, entry: unknown))) == "strategy.positions[1].entry.compare.lhs.series.indicator.type")
        let nested = Condition.all([Self.trend, .not(compare(series("close"), .less, .series(SeriesRef(source: .indicator(IndicatorSpec(type: "ema", params: [-3]))))))])
        #expect(Self.field(of: with(Position(ticker: "MSFT", weight: 0.5, entry: Self.trend, exit: nested)))
            == "strategy.positions[1].exit.all.conditions[1].not.compare.rhs.series.indicator.params[0]")
        #expect(Self.field(of: with(Position(ticker: "MSFT", weight: 0.5, entry: .any([])))) == "strategy.positions[1].entry.any.conditions")
        #expect(Self.field(of: with(Position(ticker: "MSFT", weight: 0.5, entry: compare(.number(1), .less, .number(2))))) == "strategy.positions[1].entry.compare")
        #expect(Self.field(of: Strategy(positions: [ok], commissionBps: -1)) == "strategy.commission_bps")
        #expect(Self.field(of: Strategy(positions: [ok], slippageBps: .infinity)) == "strategy.slippage_bps")
    }

    @Test("invalid stops, shorts and sizing name the offending field")
    func stopsShortsSizingPaths() {
        let ok = Position(ticker: "AAPL", weight: 0.5, entry: Self.trend)
        func with(_ exits: PriceExits, direction: PositionDirection = .long, sizing: SizingMode = .weight, size: Double = 0, weight: Double = 0.5) -> Strategy {
            Strategy(positions: [ok, Position(ticker: "MSFT", weight: weight, entry: Self.trend, direction: direction, sizing: sizing, size: size, exits: exits)])
        }
        #expect(Self.field(of: with(PriceExits(stopLoss: 0.05, takeProfit: 0.1, trailingStop: 0.08, maxBars: 10))) == nil)
        #expect(Self.field(of: with(PriceExits(stopLoss: -0.05))) == "strategy.positions[1].stop_loss")
        #expect(Self.field(of: with(PriceExits(stopLoss: 1))) == "strategy.positions[1].stop_loss")
        #expect(Self.field(of: with(PriceExits(stopLoss: 1.5), direction: .short)) == nil, "a short's stop may be above 100 %")
        #expect(Self.field(of: with(PriceExits(takeProfit: 0))) == "strategy.positions[1].take_profit")
        #expect(Self.field(of: with(PriceExits(takeProfit: -1))) == "strategy.positions[1].take_profit")
        #expect(Self.field(of: with(PriceExits(takeProfit: 1), direction: .short)) == "strategy.positions[1].take_profit")
        #expect(Self.field(of: with(PriceExits(trailingStop: .nan))) == "strategy.positions[1].trailing_stop")
        #expect(Self.field(of: with(PriceExits(stopLoss: 2, atrPeriod: 14))) == nil, "ATR multiples above 1")
        #expect(Self.field(of: with(PriceExits(atrPeriod: 14))) == "strategy.positions[1].stop_atr_period")
        #expect(Self.field(of: with(PriceExits(stopLoss: 2, atrPeriod: 0))) == "strategy.positions[1].stop_atr_period")
        #expect(Self.field(of: with(PriceExits(maxBars: 0))) == "strategy.positions[1].max_bars")
        // A short with a weight over 1 without leverage, and shorts counting in the weight sum.
        #expect(Self.field(of: with(PriceExits(), direction: .short, weight: 1.5)) == "strategy.positions[1].weight")
        #expect(Self.field(of: with(PriceExits(), direction: .short, weight: 0.6)) == "strategy.positions")
        // Sizing that cannot be filled.
        #expect(Self.field(of: with(PriceExits(), sizing: .cash, size: 0)) == "strategy.positions[1].size")
        #expect(Self.field(of: with(PriceExits(), sizing: .shares, size: -5)) == "strategy.positions[1].size")
        #expect(Self.field(of: with(PriceExits(), sizing: .risk, size: 0.01)) == "strategy.positions[1].stop_loss")
        #expect(Self.field(of: with(PriceExits(stopLoss: 0.05), sizing: .risk, size: 1.5)) == "strategy.positions[1].size")
        #expect(Self.field(of: with(PriceExits(stopLoss: 0.05), sizing: .risk, size: 0.01)) == nil)
        #expect(Self.field(of: with(PriceExits(), sizing: .cash, size: 100_001)) == "strategy.positions[1].size")
        var leveraged = with(PriceExits(), sizing: .cash, size: 150_000)
        leveraged.allowLeverage = true
        #expect(Self.field(of: leveraged) == nil)
    }

    @Test("invalid settings name the offending field")
    func settingsPaths() {
        let strategy = Strategy(positions: [Position(ticker: "AAPL", weight: 1, entry: Self.trend)])
        let backwards = BacktestSettings(start: TestData.date("2012-01-03"), end: TestData.date("2011-01-03"))
        #expect(Self.field(of: strategy, settings: backwards) == "settings.end_date")
        var poor = Self.settings
        poor.initialCapital = 0
        #expect(Self.field(of: strategy, settings: poor) == "settings.initial_capital")
        var noBenchmark = Self.settings
        noBenchmark.benchmark = ""
        #expect(Self.field(of: strategy, settings: noBenchmark) == "settings.benchmark")
    }

    @Test("engines reject invalid strategies before simulating")
    func enginesValidate() throws {
        let snapshot = try TestData.snapshot(["AAPL", "SPY"])
        let strategy = Strategy(positions: [Position(ticker: "AAPL", weight: 2, entry: Self.trend)])
        for engine in [VectorEngine() as any BacktestRunner, ReferenceEngine()] {
            #expect(throws: BacktestError.invalidArgument("weight must be in (0, 1], got 2.0", field: "strategy.positions[0].weight")) {
                try engine.run(strategy, settings: Self.settings, snapshot: snapshot, indicators: IndicatorStore())
            }
        }
    }

    @Test("analysis: tickers with the benchmark, indicator series deduplicated across variants")
    func analysis() throws {
        let a = Strategy(positions: [Position(ticker: "AAPL", weight: 1, entry: .all([
            compare(series("sma:50"), .greater, series("sma:200")),
            compare(series("close", "SPY"), .greater, series("sma:200", "SPY")),
        ]))])
        let b = Strategy(positions: [Position(ticker: "AAPL", weight: 1, entry: compare(
            .series(SeriesRef(source: .indicator(IndicatorSpec(type: "SMA", params: [50.0])))), .greater,
            series("macd:12,26,9")), exit: compare(series("macd:12,26,9:macd"), .less, .number(0)))])
        let c = Strategy(positions: [Position(ticker: "XOM", weight: 1, entry: compare(series("sma:50"), .greater, series("close")))])
        let analysis = try StrategyAnalysis(strategies: [a, b, c], settings: Self.settings)
        #expect(analysis.tickers == ["AAPL", "SPY", "XOM"])
        #expect(analysis.indicatorKeys.map(\.description) == [
            "AAPL|macd:12,26,9:macd", "AAPL|sma:200", "AAPL|sma:50", "SPY|sma:200", "XOM|sma:50",
        ])
    }

    @Test("analysis errors name the variant")
    func analysisErrors() {
        let bad = Strategy(positions: [Position(ticker: "AAPL", weight: 1, entry: compare(series("close"), .greater,
            .series(SeriesRef(source: .indicator(IndicatorSpec(type: "rsi", params: [1]))))))])
        #expect(throws: BacktestError.self) {
            try StrategyAnalysis(strategies: [bad], settings: Self.settings, fieldPrefix: { FieldPath("variants[\($0)]") })
        }
        do {
            _ = try StrategyAnalysis(strategies: [bad], settings: Self.settings, fieldPrefix: { FieldPath("variants[\($0)]") })
        } catch {
            #expect((error as? BacktestError)?.field == "variants[0].positions[0].entry.compare.rhs.series.indicator.params[0]")
        }
    }
}
