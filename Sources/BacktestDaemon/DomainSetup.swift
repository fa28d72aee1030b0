import BacktestCache
import BacktestCore
import BacktestEngine
import BacktestService
import Logging
import MarketData
import ServiceLifecycle

/// Builds the domain service from the configuration: the market-data source, the Redis cache
/// (unless `BACKTESTD_CACHE` turns it off), the engine selection (`USE_NEW_ENGINE`) and the
/// batch settings.
package struct DomainSetup {
    package var service: EngineBacktestService
    /// The market-data cache, nil when the configuration turned it off.
    package var cache: MarketDataCache?
    /// Background services to run beside the server (the purge schedule).
    package var services: [any Service]

    /// - Throws: `BacktestError` when the data source cannot be opened (e.g. a files directory
    ///   that does not exist).
    package static func make(_ configuration: BacktestdConfiguration, logger: Logger) throws(BacktestError) -> DomainSetup {
        let source = try configuration.dataSource.makeProvider(logger: logger)
        let engines = EngineSelection(useNewEngine: configuration.useNewEngine)
        if !engines.useNewEngine { logger.notice("USE_NEW_ENGINE=false: every request runs on the reference engine") }

        var cache: MarketDataCache?
        var services: [any Service] = []
        if let settings = configuration.cache {
            let shared = MarketDataCache(redis: settings.redis, options: settings.options, logger: Logger(label: "backtestd.cache"))
            cache = shared
            services.append(PurgeService(scheduler: PurgeScheduler(cache: shared)))
            logger.info(
                "cache: Redis at \(settings.redis.host):\(settings.redis.port), key prefix '\(settings.options.keyPrefix)'; purges at 4:00 PM and 8:00 PM ET")
        } else {
            logger.notice("cache disabled (BACKTESTD_CACHE): every backtest fetches from \(source.name)")
        }
        // A result whose orders alone cannot fit in a frame stops early (issue 12).
        let pipeline = BacktestPipeline(
            source: source, cache: cache, engines: engines, logger: Logger(label: "backtestd.pipeline"),
            answerBound: AnswerBound(frameLimit: configuration.server.maxFramePayload))
        let maxParallel = configuration.maxParallel
        let service = EngineBacktestService(
            pipeline: pipeline,
            jobs: BatchJobRegistry(
                retention: .seconds(configuration.batchRetentionSeconds),
                maxRetainedBytes: configuration.batchRetentionMegabytes * 1024 * 1024,
                budgetBytes: configuration.batchBudgetMegabytes * 1024 * 1024, maxQueued: configuration.batchQueue),
            maxParallel: maxParallel, statusAnswerBytes: configuration.server.maxFramePayload / 2,
            variantDelay: .milliseconds(configuration.variantDelayMilliseconds),
            serverVersion: configuration.server.serverVersion)
        if configuration.variantDelayMilliseconds > 0 {
            logger.notice("--variant-delay-ms \(configuration.variantDelayMilliseconds): every batch variant result is paced (demos and tests only)")
        }
        logger.info(
            "data source: \(source.name) (epoch \(source.dataEpoch)), engine: \(engines.useNewEngine ? "v2" : "reference"), batch parallelism \(maxParallel)")
        return DomainSetup(service: service, cache: cache, services: services)
    }
}
