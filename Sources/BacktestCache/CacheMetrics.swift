import NIOConcurrencyHelpers

/// The cache's figures since the process started, for `ServerInfo`, `backtest info` and the
/// metrics endpoint. Counters only grow; `generationBytes` / `generationKeys` restart at each new
/// generation.
public struct CacheFigures: Sendable, Hashable {
    /// Month-of-bars and indicator lookups answered by the cache (process memory or Redis).
    public var hits: UInt64 = 0
    /// Lookups that went to the source (absent, corrupt, foreign, or dated after T-2).
    public var misses: UInt64 = 0
    /// Values found in Redis that were corrupt or stored under another key (served as misses).
    public var rejectedValues: UInt64 = 0
    /// Requests (sessions) opened, and those of them that could not use Redis.
    public var sessions: UInt64 = 0
    public var sessionsWithoutRedis: UInt64 = 0
    /// The generation this process uses now (-1: none yet).
    public var generation: Int64 = -1
    /// Bytes and keys this process wrote to Redis in `generation` (values and keys as sent).
    public var generationBytes: UInt64 = 0
    public var generationKeys: UInt64 = 0
    /// Size of the in-process layer.
    public var localBytes: UInt64 = 0
    public var localEntries: UInt64 = 0
    /// True while Redis answers (the pool's circuit breaker is closed).
    public var redisAvailable = false
    /// The last purge this process made: Unix seconds, why ("4:00 PM ET", "manual"), entries
    /// removed. `lastPurgeUnixSeconds` is 0 when none was made yet.
    public var lastPurgeUnixSeconds: Int64 = 0
    public var lastPurgeReason = ""
    public var lastPurgeRemovedEntries: UInt64 = 0

    public init() {}

    /// hits / (hits + misses), 0 before any lookup.
    public var hitRate: Double { hits + misses == 0 ? 0 : Double(hits) / Double(hits + misses) }
}

/// Thread-safe accumulator behind `MarketDataCache.figures()`.
final class CacheMetrics: Sendable {
    private let state = NIOLockedValueBox(CacheFigures())

    func sessionOpened(usesRedis: Bool) {
        state.withLockedValue {
            $0.sessions += 1
            if !usesRedis { $0.sessionsWithoutRedis += 1 }
        }
    }

    func count(hits: Int, misses: Int) {
        state.withLockedValue {
            $0.hits += UInt64(max(0, hits))
            $0.misses += UInt64(max(0, misses))
        }
    }

    func rejected(_ count: Int) {
        state.withLockedValue { $0.rejectedValues += UInt64(max(0, count)) }
    }

    func wrote(keys: Int, bytes: Int, generation: Int64) {
        state.withLockedValue {
            if generation > $0.generation {
                $0.generation = generation
                $0.generationBytes = 0
                $0.generationKeys = 0
            }
            guard generation == $0.generation else { return }
            $0.generationKeys += UInt64(keys)
            $0.generationBytes += UInt64(bytes)
        }
    }

    func generationInUse(_ generation: Int64) {
        state.withLockedValue {
            if generation > $0.generation {
                $0.generation = generation
                $0.generationBytes = 0
                $0.generationKeys = 0
            }
        }
    }

    func purged(atUnixSeconds seconds: Int64, reason: String, removed: Int) {
        state.withLockedValue {
            $0.lastPurgeUnixSeconds = seconds
            $0.lastPurgeReason = reason
            $0.lastPurgeRemovedEntries = UInt64(max(0, removed))
        }
    }

    var snapshot: CacheFigures { state.withLockedValue { $0 } }
}
