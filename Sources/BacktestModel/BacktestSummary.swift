import BacktestCore

/// A backtest's outcome without its curves: what a sweep of thousands of variants keeps per
/// variant. Same numbers as the full `BacktestResult` of the same strategy, to the bit; no
/// equity or benchmark curve, no dates, no order list.
///
/// A model type, like `BacktestResult`.
public struct BacktestSummary: Sendable, Hashable {
    public var strategyName: String
    /// The strategy's metrics (empyrical conventions; see `PerformanceMetrics`).
    public var metrics: Metrics
    /// The buy-and-hold benchmark's metrics over the same calendar.
    public var benchmarkMetrics: Metrics
    /// Total equity at the last date's close, in the account currency.
    public var finalEquity: Double
    public var initialCapital: Double
    /// Orders filled (buys and sells, rebalancing included).
    public var orderCount: Int
    public var warnings: [BacktestWarning]
    /// Engine, data source, bars processed and simulation time of this variant.
    public var stats: RunStatistics

    public init(
        strategyName: String, metrics: Metrics, benchmarkMetrics: Metrics, finalEquity: Double, initialCapital: Double,
        orderCount: Int, warnings: [BacktestWarning], stats: RunStatistics
    ) {
        self.strategyName = strategyName
        self.metrics = metrics
        self.benchmarkMetrics = benchmarkMetrics
        self.finalEquity = finalEquity
        self.initialCapital = initialCapital
        self.orderCount = orderCount
        self.warnings = warnings
        self.stats = stats
    }

    /// The summary of a full result: its metrics, final equity, order count, warnings, stats.
    public init(_ result: BacktestResult) {
        self.init(
            strategyName: result.strategyName, metrics: result.metrics, benchmarkMetrics: result.benchmarkMetrics,
            finalEquity: result.finalEquity, initialCapital: result.initialCapital, orderCount: result.orders.count,
            warnings: result.warnings, stats: result.stats)
    }

    /// Round trips opened, including one still open at the end (`metrics.tradeCount`).
    public var tradeCount: Int { metrics.tradeCount }
}
