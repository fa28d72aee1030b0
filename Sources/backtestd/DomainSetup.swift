import BacktestCache
import BacktestCore
import BacktestEngine
import BacktestService
import Logging
import MarketData
import ServiceLifecycle

/// Builds the domain service from the configuration: the market-data source, the Redis cache
/// (unless BACKTESTD_CACHE=off), the engine selection (USE_NEW_ENGINE) and the batch settings.
struct DomainSetup {
    var service: EngineBacktestService
    /// Background services to run beside the server (the purge schedule).
    var services: [any Service]

    static func make(
        dataSource: String, maxParallel: Int, batchRetention: (seconds: Int, megabytes: Int), maxFramePayload: Int, serverVersion: String,
        environment: [String: String], logger: Logger
    ) throws -> DomainSetup {
        let source = try MarketDataSource.parse(dataSource, environment: environment).makeProvider(logger: logger)
        let engines = EngineSelection.fromEnvironment(environment)
        if !engines.useNewEngine { logger.notice("USE_NEW_ENGINE=false: every request runs on the reference engine") }

        var cache: MarketDataCache?
        var services: [any Service] = []
        if environment["BACKTESTD_CACHE"]?.lowercased() == "off" {
            logger.notice("cache disabled (BACKTESTD_CACHE=off): every backtest fetches from \(source.name)")
        } else {
            let redis = try RedisConfiguration(environment: environment)
            let options = try CacheOptions(environment: environment)
            let shared = MarketDataCache(redis: redis, options: options, logger: Logger(label: "backtestd.cache"))
            cache = shared
            services.append(PurgeService(scheduler: PurgeScheduler(cache: shared)))
            logger.info("cache: Redis at \(redis.host):\(redis.port), key prefix '\(options.keyPrefix)'; purges at 4:00 PM and 8:00 PM ET")
        }
        let pipeline = BacktestPipeline(source: source, cache: cache, engines: engines, logger: Logger(label: "backtestd.pipeline"))
        let service = EngineBacktestService(
            pipeline: pipeline, jobs: BatchJobRegistry(
                retention: .seconds(batchRetention.seconds), maxRetainedBytes: batchRetention.megabytes * 1024 * 1024),
            maxParallel: maxParallel, statusAnswerBytes: maxFramePayload / 2, serverVersion: serverVersion)
        logger.info("data source: \(source.name) (epoch \(source.dataEpoch)), engine: \(engines.useNewEngine ? "v2" : "reference"), batch parallelism \(maxParallel)")
        return DomainSetup(service: service, services: services)
    }
}
