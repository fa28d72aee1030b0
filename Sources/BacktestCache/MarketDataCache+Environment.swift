import Logging

extension MarketDataCache {
    /// The cache as the environment describes it (docs/cache.md): `BACKTESTD_CACHE=off` turns
    /// it off (every request goes to the source); otherwise `RedisConfiguration(environment:)`
    /// and `CacheOptions(environment:)`. Throws a message naming a malformed variable.
    package static func fromEnvironment(
        _ environment: [String: String], clock: any CacheClock = SystemCacheClock(),
        logger: Logger = Logger(label: "backtestd.cache")
    ) throws(CacheConfigurationError) -> MarketDataCache {
        let options = try CacheOptions(environment: environment)
        if let switch_ = environment["BACKTESTD_CACHE"]?.lowercased(), ["off", "0", "false", "no"].contains(switch_) {
            return MarketDataCache(redis: nil, options: options, clock: clock, logger: logger)
        }
        return MarketDataCache(redis: try RedisConfiguration(environment: environment), options: options, clock: clock, logger: logger)
    }
}
