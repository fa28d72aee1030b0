import BacktestCache
import BacktestCore
import BacktestEngine
import BacktestModel
import Logging
import MarketData

/// The path every backtest takes: analysis → data → indicators → simulation.
///
/// `prepare` runs the first three once for a set of strategies (one, or every variant of a
/// batch): the analysis derives the union of tickers and unique indicator series, the data phase
/// asks the (cached, coalesced) source for all of them in one query, and the indicator phase
/// takes series from the indicator cache or computes and stores them. `simulate` then runs one
/// strategy on the prepared data; it is synchronous, CPU-bound and safe to run in parallel.
package struct BacktestPipeline: Sendable {
    /// The market-data source behind the cache (coalescing, batched).
    package let source: any MarketDataProvider
    /// nil when the server runs without Redis.
    package let cache: MarketDataCache?
    package let engines: EngineSelection
    package let logger: Logger
    private let cachedSource: CachedMarketData?
    private let indicatorCache: IndicatorCache?

    package init(
        source: any MarketDataProvider, cache: MarketDataCache?, engines: EngineSelection = EngineSelection(),
        logger: Logger = Logger(label: "backtestd.pipeline")
    ) {
        self.source = source
        self.cache = cache
        self.engines = engines
        self.logger = logger
        cachedSource = cache.map { CachedMarketData(upstream: source, cache: $0) }
        indicatorCache = cache.map { IndicatorCache(cache: $0) }
    }

    /// One backtest, start to finish, with its run statistics and one log line.
    package func runBacktest(_ strategy: Strategy, settings: BacktestSettings) async throws(BacktestError) -> BacktestResult {
        let started = ContinuousClock.now
        let prepared = try await prepare([strategy], settings: settings)
        var result = try simulate(strategy, in: prepared)
        result.stats.totalMs = (ContinuousClock.now - started).milliseconds
        logger.info("\(PerformanceLine(label: "backtest '\(strategy.name)'", stats: result.stats))")
        return result
    }

    /// The shared phase for `strategies`. Validation errors name the strategy's field path:
    /// `fieldPrefix(i)` is "strategy" for a single backtest, "variants[i]" in a batch.
    package func prepare(
        _ strategies: [Strategy], settings: BacktestSettings, fieldPrefix: @escaping (Int) -> String = { _ in "strategy" }
    ) async throws(BacktestError) -> PreparedBatch {
        let clock = ContinuousClock()
        var stats = RunStatistics()
        stats.engine = engines.useNewEngine ? engines.primary.name : engines.fallback.name
        stats.dataSource = source.name

        // Analysis: validate, then the union of tickers and unique indicator series.
        var phase = clock.now
        try Validation.validate(settings)
        for (index, strategy) in strategies.enumerated() {
            try Validation.validate(strategy, path: fieldPrefix(index))
        }
        let analysis = try StrategyAnalysis(strategies: strategies, settings: settings, fieldPrefix: fieldPrefix)
        stats.indicatorSeries = analysis.indicatorKeys.count
        stats.analysisMs = (clock.now - phase).milliseconds

        // Data: one query for every ticker, from the data epoch so indicators are canonical.
        phase = clock.now
        let session = await cache?.openSession()
        let range = min(source.dataEpoch, settings.start)...settings.end
        let query = BarQuery(symbols: analysis.tickers, range: range, adjustment: settings.adjustment)
        let bars: BarSet
        do {
            if let cachedSource, let session {
                bars = try await cachedSource.dailyBars(query, session: session)
            } else {
                bars = try await source.dailyBars(query)
            }
        } catch {
            await session?.finish()
            throw BacktestPipeline.dataError(error)
        }
        let snapshot = MarketSnapshot(bars: bars.bars, source: source.name)
        stats.dataMs = (clock.now - phase).milliseconds

        // Indicators: from the cache where possible, computed (and stored) otherwise.
        phase = clock.now
        let indicators: IndicatorStore
        do throws(BacktestError) {
            indicators = try await computeIndicators(analysis.indicatorKeys, snapshot: snapshot, settings: settings, session: session)
        } catch {
            await session?.finish()
            throw error
        }
        stats.indicatorsMs = (clock.now - phase).milliseconds

        if let session {
            let cacheStats = await session.finish()
            stats.cacheHits = cacheStats.hits
            stats.cacheMisses = cacheStats.misses
            stats.apiCalls = max(cacheStats.apiCalls, bars.apiCalls)
        } else {
            stats.apiCalls = bars.apiCalls
        }
        var warnings = bars.warnings
        if !bars.missing.isEmpty {
            warnings.append("no data from \(source.name) for \(bars.missing.joined(separator: ", ")) in \(range.lowerBound)...\(range.upperBound)")
        }
        return PreparedBatch(settings: settings, snapshot: snapshot, indicators: indicators, stats: stats, warnings: warnings)
    }

    /// Runs one strategy on prepared data (v2 engine, or the reference engine as configured) and
    /// merges the shared phase's statistics and warnings into its result.
    package func simulate(_ strategy: Strategy, in prepared: PreparedBatch) throws(BacktestError) -> BacktestResult {
        var result = try engines.run(
            strategy, settings: prepared.settings, snapshot: prepared.snapshot, indicators: prepared.indicators,
            log: { [logger] warning in logger.warning("\(warning)") })
        let simulation = result.stats
        result.stats = prepared.stats
        result.stats.engine = simulation.engine
        result.stats.simulationMs = simulation.simulationMs
        result.stats.barsProcessed = simulation.barsProcessed
        result.stats.totalMs = prepared.stats.analysisMs + prepared.stats.dataMs + prepared.stats.indicatorsMs + simulation.simulationMs
        result.warnings = prepared.warnings + result.warnings
        if result.warnings.contains(where: { $0.contains("flat") }) {
            logger.warning("backtest '\(strategy.name)': \(result.warnings.filter { $0.contains("flat") }.joined(separator: "; "))")
        }
        return result
    }

    private func computeIndicators(
        _ keys: [IndicatorKey], snapshot: MarketSnapshot, settings: BacktestSettings, session: CacheSession?
    ) async throws(BacktestError) -> IndicatorStore {
        var store = IndicatorStore()
        guard let indicatorCache, let session else {
            try store.computeMissing(keys, snapshot: snapshot)
            return store
        }
        for key in keys {
            guard let bars = snapshot.bars[key.ticker], let first = bars.firstDate, let last = bars.lastDate else { continue }
            let cacheKey = IndicatorCacheKey(
                ticker: try Ticker(validating: key.ticker, field: "ticker"), indicator: key.spec.canonicalKey, adjustment: settings.adjustment,
                source: source.name, from: first, through: last)
            if let values = await indicatorCache.get(cacheKey, expectedCount: bars.count, session: session) {
                store.insert(values, for: key)
            } else {
                let values = IndicatorCalculator.compute(key, bars: bars)
                store.insert(values, for: key)
                await indicatorCache.put(cacheKey, values: values, session: session)
            }
        }
        // Keys whose ticker has no bars are left to the engine, which names the field at fault.
        return store
    }

    /// Errors from the data layer as the client should see them.
    static func dataError(_ error: any Error) -> BacktestError {
        if let error = error as? BacktestError { return error }
        if error is CancellationError { return BacktestError(.cancelled, "cancelled while fetching market data") }
        return BacktestError(.unavailable, "market data could not be loaded: \(error)")
    }
}

/// The one-line performance breakdown logged per backtest or batch.
struct PerformanceLine: CustomStringConvertible {
    var label: String
    var stats: RunStatistics

    var description: String {
        func ms(_ value: Double) -> String { String(format: "%.2f", value) }
        var line = "\(label): \(ms(stats.totalMs)) ms (analysis \(ms(stats.analysisMs)), data \(ms(stats.dataMs)), "
        line += "indicators \(ms(stats.indicatorsMs)), simulation \(ms(stats.simulationMs))), "
        line += "cache \(stats.cacheHits) hits / \(stats.cacheMisses) misses (\(String(format: "%.1f", stats.cacheHitRate * 100))%), "
        line += "\(stats.apiCalls) API calls, engine \(stats.engine), data \(stats.dataSource)"
        if stats.variantsPerSecond > 0 { line += ", \(String(format: "%.1f", stats.variantsPerSecond)) variants/s" }
        return line
    }
}
