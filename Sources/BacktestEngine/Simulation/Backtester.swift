import BacktestCore
import BacktestModel

/// The whole engine side of one backtest, timed by phase: validation and analysis, the
/// indicator series the store lacks, then the selected engine. The data phase belongs to the
/// caller (it fetched the snapshot), which passes its duration in for the statistics.
package struct Backtester: Sendable {
    package var selection: EngineSelection

    package init(selection: EngineSelection = EngineSelection()) {
        self.selection = selection
    }

    /// Runs `strategy`; `indicators` may hold any subset of the series (e.g. from a cache) and
    /// receives the ones computed here, so the caller can store them. Throws CANCELLED soon
    /// after `cancellation` is set (checked per indicator series and inside the engine).
    package func run(
        _ strategy: Strategy, settings: BacktestSettings, snapshot: MarketSnapshot,
        indicators: inout IndicatorStore, dataMs: Double = 0, cancellation: CancellationFlag? = nil,
        log: (String) -> Void = { _ in }
    ) throws(BacktestError) -> BacktestResult {
        let clock = ContinuousClock()
        let started = clock.now
        try Validation.validate(settings)
        try Validation.validate(strategy, cancellation: cancellation)
        let analysis = try StrategyAnalysis(strategy: strategy, settings: settings, cancellation: cancellation)
        let analyzed = clock.now
        let computed = try indicators.computeMissing(analysis.indicatorKeys, snapshot: snapshot, cancellation: cancellation)
        let indicatorsDone = clock.now
        let market = try PreparedMarket(settings: settings, snapshot: snapshot)
        var result = try selection.run(validated: strategy, market: market, indicators: indicators, cancellation: cancellation, log: log)
        result.stats.analysisMs = (analyzed - started).milliseconds
        result.stats.indicatorsMs = (indicatorsDone - analyzed).milliseconds
        result.stats.dataMs = dataMs
        result.stats.indicatorSeries = analysis.indicatorKeys.count
        result.stats.indicatorSeriesComputed = computed
        result.stats.dataSource = snapshot.source
        result.stats.totalMs = (clock.now - started).milliseconds + dataMs
        return result
    }
}
