import BacktestCache
import BacktestCore
import BacktestEngine
import BacktestModel
import Foundation
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
            throw BacktestPipeline.dataError(error, strategies: strategies, settings: settings, fieldPrefix: fieldPrefix)
        }
        // Tickers without a bar in the range may still exist (listed later, delisted earlier):
        // those get their data outside the window, so the engine applies the missing-bar policy
        // (the position never trades, a warning says why) instead of failing the portfolio.
        // Tickers the source has no data for at all stay absent: NOT_FOUND, as a typo should be.
        var snapshotBars = bars.bars
        var extraAPICalls = 0
        var missing = bars.missing
        let positionTickers = Set(strategies.flatMap { $0.positions.map(\.ticker) })
        let unlisted = missing.filter { positionTickers.contains($0) && $0 != settings.benchmark }
        if !unlisted.isEmpty {
            let today = NewYorkTime.date(unixSeconds: Int64(Date().timeIntervalSince1970))
            let wide = BarQuery(symbols: unlisted, range: source.dataEpoch...max(today, settings.end), adjustment: settings.adjustment)
            if let found = try? await source.dailyBars(wide) {
                for (symbol, history) in found.bars where !history.isEmpty {
                    snapshotBars[symbol] = history
                    missing.removeAll { $0 == symbol }
                }
                extraAPICalls = found.apiCalls
            }
        }
        let snapshot = MarketSnapshot(bars: snapshotBars, source: source.name)
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
            stats.apiCalls = max(cacheStats.apiCalls, bars.apiCalls) + extraAPICalls
        } else {
            stats.apiCalls = bars.apiCalls + extraAPICalls
        }
        // The data layer's listing warnings are measured from the query's start (the source's
        // epoch, for indicators), not the window's; the engine says the same fact relative to the
        // window ("X has no bars before D (requested start S)"), so only its warning is kept.
        var warnings = bars.warnings.filter { warning in
            !analysis.tickers.contains { BarSet.isListingWarning(warning, of: $0) }
        }
        if let warmUp = Self.warmUpWarning(indicators, snapshot: snapshot, start: settings.start, source: source) {
            warnings.append(warmUp)
            logger.notice("\(warmUp)")
        }
        if !missing.isEmpty {
            warnings.append("no data from \(source.name) for \(missing.joined(separator: ", ")) in \(range.lowerBound)...\(range.upperBound)")
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
        // Each fact once, in the order first said.
        var seen = Set<String>()
        result.warnings = (prepared.warnings + result.warnings).filter { seen.insert($0).inserted }
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
                ticker: key.ticker, indicator: key.spec.canonicalKey, adjustment: settings.adjustment,
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
    ///
    /// A ticker the source rejects (reported with field `symbols`) is reported with the path of
    /// the first position trading it, or of the benchmark, so the client sees which field to fix.
    static func dataError(
        _ error: any Error, strategies: [Strategy] = [], settings: BacktestSettings? = nil,
        fieldPrefix: (Int) -> String = { _ in "strategy" }
    ) -> BacktestError {
        if var error = error as? BacktestError {
            if error.field == "symbols", let symbol = rejectedTicker(in: error.message) {
                for (index, strategy) in strategies.enumerated() {
                    if let position = strategy.positions.firstIndex(where: { $0.ticker.uppercased() == symbol }) {
                        error.field = "\(fieldPrefix(index)).positions[\(position)].ticker"
                        return error
                    }
                }
                if settings?.benchmark.uppercased() == symbol { error.field = "settings.benchmark" }
            }
            return error
        }
        if error is CancellationError { return BacktestError(.cancelled, "cancelled while fetching market data") }
        return BacktestError(.unavailable, "market data could not be loaded: \(error)")
    }
}

extension BacktestPipeline {
    /// "invalid ticker '1ABC': …" → "1ABC" (upper-cased).
    static func rejectedTicker(in message: String) -> String? {
        guard let start = message.range(of: "invalid ticker '") else { return nil }
        let rest = message[start.upperBound...]
        guard let end = rest.firstIndex(of: "'") else { return nil }
        return rest[..<end].uppercased()
    }

    /// A warning when the backtest window starts before some indicator has a value: its first
    /// value comes after `start` because the source's data (from its epoch, or the ticker's
    /// listing) is too short for the indicator's warm-up, so no signal of it is evaluated until
    /// then. Names the binding indicator and the date; nil when every indicator is defined at
    /// `start`.
    static func warmUpWarning(
        _ indicators: IndicatorStore, snapshot: MarketSnapshot, start: TradingDate, source: any MarketDataProvider
    ) -> String? {
        var latest: (date: TradingDate, key: IndicatorKey, firstBar: TradingDate)?
        for (key, values) in indicators.series {
            guard let bars = snapshot.bars[key.ticker], let firstBar = bars.firstDate, values.count == bars.count else { continue }
            guard let index = values.firstIndex(where: { !$0.isNaN }) else { continue }
            let date = bars.dates[index]
            if date > start, latest.map({ date > $0.date || (date == $0.date && key < $0.key) }) ?? true {
                latest = (date, key, firstBar)
            }
        }
        guard let latest else { return nil }
        let origin = latest.firstBar <= source.dataEpoch
            ? "\(source.name)'s data begins \(source.dataEpoch)"
            : "\(latest.key.ticker)'s data from \(source.name) begins \(latest.firstBar)"
        return "indicators warm up until \(latest.date) (\(latest.key.spec.canonicalKey) of \(latest.key.ticker)): the window starts \(start) but \(origin); no signal using them is evaluated before \(latest.date)"
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
