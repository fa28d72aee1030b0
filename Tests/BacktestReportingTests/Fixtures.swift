import BacktestCore
import BacktestEngine
import BacktestModel
import BacktestReporting
import BacktestTestSupport
import Foundation

/// Results to render: real engine runs on the shared daily bars, and small hand-made ones where a
/// test needs a particular shape (a straight line, an infinite metric).
enum Fixtures {
    /// examples/strategies/sma-crossover.json as committed.
    static func exampleFile(_ name: String) throws -> Data {
        try Data(contentsOf: SharedData.packageRoot.appendingPathComponent("examples/strategies/\(name)"))
    }

    /// A real backtest of `strategy` on split-adjusted AAPL/SPY (and whatever else it names).
    static func run(_ strategy: Strategy, from start: String = "2012-01-03", to end: String = "2016-12-30") throws -> BacktestResult {
        let settings = BacktestSettings(start: TradingDate(iso: start)!, end: TradingDate(iso: end)!)
        let analysis = try StrategyAnalysis(strategy: strategy, settings: settings)
        var bars: [String: DailyBars] = [:]
        for ticker in analysis.tickers { bars[ticker] = try loaded.get()[ticker] ?? SharedData.rawBars(ticker).adjusted(.split) }
        var store = IndicatorStore()
        return try Backtester().run(strategy, settings: settings, snapshot: MarketSnapshot(bars: bars, source: "files"), indicators: &store)
    }

    /// AAPL and SPY, parsed once per test process (parsing the CSVs is the slow part).
    private static let loaded = Result<[String: DailyBars], any Error> {
        try Dictionary(uniqueKeysWithValues: ["AAPL", "SPY"].map { ($0, try SharedData.rawBars($0).adjusted(.split)) })
    }

    /// The SMA crossover example with `weight` (the batch variants of the table tests).
    static func smaCrossover(weight: Double, name: String = "AAPL SMA 50/200 trend") throws -> BacktestResult {
        var strategy = try StrategyFile.decode(exampleFile("sma-crossover.json")).strategy
        strategy.positions[0].weight = weight
        strategy.name = name
        return try run(strategy)
    }

    /// A result with the given equity and benchmark curves on consecutive weekdays.
    static func handMade(equity: [Double], benchmark: [Double]? = nil, name: String = "hand made") -> BacktestResult {
        var dates: [TradingDate] = []
        var day = TradingDate(iso: "2020-01-01")!
        while dates.count < equity.count {
            if !day.isWeekend { dates.append(day) }
            day = day.advanced(by: 1)
        }
        var metrics = Metrics()
        metrics.totalReturn = (equity.last ?? 1) / (equity.first ?? 1) - 1
        metrics.profitFactor = .infinity
        return BacktestResult(
            strategyName: name, dates: dates, equity: equity, benchmark: benchmark ?? equity, orders: [],
            metrics: metrics, benchmarkMetrics: Metrics(), warnings: [BacktestWarning(.unspecified, message: "a warning with <b>markup</b>")], stats: RunStatistics(),
            initialCapital: equity.first ?? 0, benchmarkTicker: "SPY", dataSource: "test")
    }
}
