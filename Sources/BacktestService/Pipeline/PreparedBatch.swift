import BacktestCore
import BacktestEngine
import BacktestModel

/// The shared phase of one backtest or of a whole batch, done once: the bars of every ticker any
/// variant reads (plus the benchmark) and every unique indicator series, ready for any number of
/// simulations to read concurrently.
package struct PreparedBatch: Sendable {
    package let settings: BacktestSettings
    package let snapshot: MarketSnapshot
    package let indicators: IndicatorStore
    /// Analysis, data and indicator timings, cache counts and API calls of the shared phase.
    package let stats: RunStatistics
    /// What the data layer had to say (e.g. a ticker listed after the start), for every result.
    package let warnings: [String]
}
