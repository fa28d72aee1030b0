import BacktestCore
import BacktestModel
import BacktestTestSupport
import Testing

@testable import BacktestEngine

/// The APIs that take the field of their error as an autoclosure (issue 12: no path text unless
/// an error is raised) name exactly the field they named when they took a string, and evaluate
/// it only for the error.
@Suite("Field arguments evaluated only for errors")
struct LazyFieldArgumentTests {
    static let field = "strategy.positions[2].entry.compare.lhs.series.indicator"

    /// Calls `body` with a field argument that counts its evaluations; returns the error thrown
    /// and the count.
    static func failure(_ body: (() -> String) throws(BacktestError) -> Void) -> (error: BacktestError?, evaluations: Int) {
        var evaluations = 0
        func field() -> String {
            evaluations += 1
            return FieldPath.strategy.position(2).child("entry").compareOperand(lhs: true).series.child("indicator").description
        }
        do throws(BacktestError) {
            try body(field)
            return (nil, evaluations)
        } catch {
            return (error, evaluations)
        }
    }

    @Test func normalizeNamesTypeParamsParameterAndOutput() {
        let cases: [(IndicatorSpec, String)] = [
            (IndicatorSpec(type: "smaa", params: [5]), "\(Self.field).type"),
            (IndicatorSpec(type: "sma", params: [5, 6]), "\(Self.field).params"),
            (IndicatorSpec(type: "sma", params: [0]), "\(Self.field).params[0]"),
            (IndicatorSpec(type: "bbands", params: [20, -1]), "\(Self.field).params[1]"),
            (IndicatorSpec(type: "macd", params: [26, 12, 9]), "\(Self.field).params"),
            (IndicatorSpec(type: "macd", params: [12, 26, 0]), "\(Self.field).params[2]"),
            (IndicatorSpec(type: "rsi", params: [14], output: "signal"), "\(Self.field).output"),
        ]
        for (spec, expected) in cases {
            let (error, evaluations) = Self.failure { field throws(BacktestError) in _ = try IndicatorCatalog.normalize(spec, field: field()) }
            #expect(error?.code == .invalidArgument, "\(spec)")
            #expect(error?.field == expected, "\(spec)")
            #expect(evaluations == 1, "\(spec)")
        }
        #expect(Self.failure { field throws(BacktestError) in _ = try IndicatorCatalog.normalize(IndicatorSpec(type: "sma", params: [5]), field: field()) } == (nil, 0))
        #expect(Self.failure { field throws(BacktestError) in
            _ = try IndicatorCatalog.normalize(IndicatorSpec(type: "BBands", params: [20], output: "Upper"), field: field())
        } == (nil, 0))
        let message = Self.failure { field throws(BacktestError) in _ = try IndicatorCatalog.normalize(IndicatorSpec(type: "sma", params: [2.5]), field: field()) }
        #expect(message.error?.message == "sma period must be a whole number of bars in 1...10000, got 2.5")
    }

    @Test func normalizeStillLowercasesAndFillsDefaults() throws {
        #expect(try IndicatorCatalog.normalize(IndicatorSpec(type: "MACD", params: [12], output: "Signal"), field: "x")
            == IndicatorSpec(type: "macd", params: [12, 26, 9], output: "signal"))
        #expect(try IndicatorCatalog.normalize(IndicatorSpec(type: "sma", params: [20]), field: "x") == IndicatorSpec(type: "sma", params: [20], output: "value"))
        #expect(IndicatorCatalog.definition("RSI")?.type == "rsi")
        #expect(IndicatorCatalog.definition("rsi")?.type == "rsi")
        #expect(IndicatorCatalog.definition("rsx") == nil)
    }

    @Test func requireParametersNamesParams() {
        let (error, evaluations) = Self.failure { field throws(BacktestError) in try IndicatorCatalog.requireParameters(IndicatorSpec(type: "macd", params: [12]), field: field()) }
        #expect(error?.field == "\(Self.field).params")
        #expect(error?.message == "macd needs 3 parameter(s) (fast, slow, signal), got 1: slow, signal missing; e.g. params [12, 26, 9]")
        #expect(evaluations == 1)
        #expect(Self.failure { field throws(BacktestError) in try IndicatorCatalog.requireParameters(IndicatorSpec(type: "macd", params: [12, 26, 9]), field: field()) } == (nil, 0))
    }

    @Test func indicatorKeysAndParsedSpecsNameTheirField() {
        let spec = Self.failure { field throws(BacktestError) in _ = try IndicatorKey(ticker: "AAPL", spec: IndicatorSpec(type: "sma", params: [-3]), field: field()) }
        #expect(spec.error?.field == "\(Self.field).params[0]")
        #expect(spec.evaluations == 1)
        let key = Self.failure { field throws(BacktestError) in _ = try IndicatorKey(ticker: "AAPL", key: "sma:5,x", field: field()) }
        #expect(key.error?.field == Self.field)
        #expect(key.error?.message == "'sma:5,x': parameter 'x' is not a number")
        let parsed = Self.failure { field throws(BacktestError) in _ = try IndicatorSpec(parsing: "rsi:14:nope", field: field()) }
        #expect(parsed.error?.field == "\(Self.field).output")
        #expect(Self.failure { field throws(BacktestError) in _ = try IndicatorKey(ticker: "AAPL", key: "sma:50", field: field()) } == (nil, 0))
        // The defaults are unchanged.
        #expect(throws: BacktestError.self) { _ = try IndicatorKey(ticker: "AAPL", key: "sma:0") }
        do throws(BacktestError) {
            _ = try IndicatorKey(ticker: "AAPL", spec: IndicatorSpec(type: "nope"))
            Issue.record("an unknown type was accepted")
        } catch {
            #expect(error.field == "indicator.type")
        }
    }

    @Test func preparedMarketTickerNamesTheFieldOfAMissingTicker() throws {
        let settings = BacktestSettings(start: TradingDate(iso: "2018-01-02")!, end: TradingDate(iso: "2018-12-31")!)
        let snapshot = MarketSnapshot(bars: [
            "AAPL": try SharedData.rawBars("AAPL").adjusted(.split), "SPY": try SharedData.rawBars("SPY").adjusted(.split),
        ], source: "files")
        let market = try PreparedMarket(settings: settings, snapshot: snapshot)
        var evaluations = 0
        func field() -> String {
            evaluations += 1
            return FieldPath.strategy.position(0).child("exit").member(1, ofAll: false).compareOperand(lhs: false).series.child("ticker").description
        }
        #expect(try market.ticker("AAPL", field: field()).bars.close.count > 0)
        #expect(evaluations == 0)
        #expect(throws: BacktestError(.notFound, "no market data for MSFT", field: "strategy.positions[0].exit.any.conditions[1].compare.rhs.series.ticker")) {
            _ = try market.ticker("MSFT", field: field())
        }
        #expect(evaluations == 1)
    }

    /// Validation and analysis name deep operands exactly as before `compareOperand` and
    /// `member` became one path level each.
    @Test func validationAndAnalysisNameDeepOperands() throws {
        let settings = BacktestSettings(start: TradingDate(iso: "2018-01-02")!, end: TradingDate(iso: "2018-12-31")!)
        let good = Condition.compare(lhs: .series(SeriesRef(source: .field(.close))), op: .greater, rhs: .number(1))
        let bad = Condition.compare(lhs: .number(1), op: .less, rhs: .series(SeriesRef(ticker: "msft", source: .field(.close))))
        let strategy = Strategy(name: "s", positions: [
            Position(ticker: "AAPL", weight: 0.5, entry: good),
            Position(ticker: "AAPL", weight: 0.5, entry: good, exit: .all([good, .not(.any([good, bad]))])),
        ])
        do throws(BacktestError) {
            try Validation.validate(strategy, settings: settings, path: FieldPath("run_batch").child("variants", index: 3))
            Issue.record("a lower-case series ticker was accepted")
        } catch {
            #expect(error.field == "run_batch.variants[3].positions[1].exit.all.conditions[1].not.any.conditions[1].compare.rhs.series.ticker")
        }
        let unknown = Condition.compare(
            lhs: .series(SeriesRef(source: .indicator(IndicatorSpec(type: "sma", params: [5])))), op: .greater,
            rhs: .series(SeriesRef(source: .indicator(IndicatorSpec(type: "smx", params: [5])))))
        let analysed = Strategy(name: "s", positions: [Position(ticker: "AAPL", weight: 1, entry: .any([good, unknown]))])
        do throws(BacktestError) {
            _ = try StrategyAnalysis(strategies: [analysed], settings: settings, fieldPrefix: { _ in "run_backtest.strategy" })
            Issue.record("an unknown indicator was accepted")
        } catch {
            #expect(error.field == "run_backtest.strategy.positions[0].entry.any.conditions[1].compare.rhs.series.indicator.type")
        }
        #expect(StrategyAnalysis.firstPath(of: "MSFT", in: Strategy(name: "s", positions: [
            Position(ticker: "AAPL", weight: 1, entry: .not(.compare(lhs: .number(1), op: .less, rhs: .series(SeriesRef(ticker: "MSFT", source: .field(.close)))))),
        ]))?.description == "strategy.positions[0].entry.not.compare.rhs.series.ticker")
    }
}
