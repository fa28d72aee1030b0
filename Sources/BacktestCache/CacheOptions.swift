/// Cache behaviour that is not about reaching Redis. backtestd fills it from `BACKTESTD_CACHE_PREFIX`,
/// `BACKTESTD_CACHE_TTL_SECONDS` and `BACKTESTD_CACHE_LOCAL_MB`, parsed in `BacktestdConfiguration`.
package struct CacheOptions: Sendable, Equatable {
    /// Namespace of every key ("backtestd"); several deployments can share one Redis.
    package var keyPrefix: String
    /// Expiry of every data key: a safety net for keys a purge's sweep missed (e.g. written by a
    /// request that was still running on an old generation). Longer than the gap between purges.
    package var timeToLive: Duration
    /// Budget of the in-process layer in front of Redis; 0 disables it.
    package var localCacheBytes: Int
    /// How long a purge's sweep waits for in-process requests still reading the old generation
    /// before deleting its keys (so they never see half a generation).
    package var purgeGrace: Duration

    package init(
        keyPrefix: String = "backtestd", timeToLive: Duration = .seconds(86_400),
        localCacheBytes: Int = 256 << 20, purgeGrace: Duration = .seconds(120)
    ) {
        self.keyPrefix = keyPrefix
        self.timeToLive = timeToLive
        self.localCacheBytes = localCacheBytes
        self.purgeGrace = purgeGrace
    }
}
