import BacktestCore
import Logging
import NIOConcurrencyHelpers

/// The shared cache service: Redis (through a `RedisPool`), the in-process layer in front of it,
/// generations, and purges. One instance per server process; every client's requests share it.
///
/// Only market data and indicator values go in; backtest results never do, so nothing one
/// client computes is visible to another except the (identical for everyone) source data.
///
/// Every failure to reach Redis is absorbed here: reads become misses, writes are skipped, and
/// the caller fetches from the source. A cache failure never fails a backtest.
package final class MarketDataCache: Sendable {
    package let options: CacheOptions
    package let clock: any WallClock
    let keys: CacheKeys
    /// nil when the cache is configured off: every session then passes straight to the source.
    let pool: RedisPool?
    let local: LocalCache
    let logger: Logger
    let state = NIOLockedValueBox(State())
    let metrics = CacheMetrics()

    struct State {
        /// Newest generation seen (read at session start or set by a purge in this process).
        /// Also the floor below which Redis's generation is never accepted again (see
        /// `GenerationScripts`): a Redis that lost its state is moved past it, not followed back.
        var latestGeneration: Int64?
        /// Open sessions per generation, so a purge's sweep can wait for the old one to drain.
        var activeSessions: [Int64: Int] = [:]
        var drainWaiters: [Int: (olderThan: Int64, continuation: CheckedContinuation<Void, Never>)] = [:]
        var nextWaiterID = 0
    }

    /// - Parameters:
    ///   - redis: where Redis is; nil disables the cache (sessions count every lookup as a miss).
    ///   - clock: "today" for the T-2 rule; the purge scheduler uses the same clock.
    package init(
        redis: RedisConfiguration?, options: CacheOptions = CacheOptions(), clock: any WallClock = SystemWallClock(),
        logger: Logger = Logger(label: "backtestd.cache")
    ) {
        self.options = options
        self.clock = clock
        self.logger = logger
        self.keys = CacheKeys(prefix: options.keyPrefix)
        self.pool = redis.map { RedisPool(configuration: $0, logger: logger) }
        self.local = LocalCache(capacityBytes: redis == nil ? 0 : options.localCacheBytes)
    }

    /// The cache's figures now (hits, misses, bytes and keys of the generation, last purge, …).
    public func figures() -> CacheFigures {
        var figures = metrics.snapshot
        figures.localBytes = UInt64(local.byteCount)
        figures.localEntries = UInt64(local.count)
        figures.redisAvailable = pool?.isAvailable ?? false
        return figures
    }

    /// True when Redis is configured and currently answering.
    public var isRedisAvailable: Bool { pool?.isAvailable ?? false }

    /// Stops the Redis threads; afterwards sessions run without the cache.
    package func shutdown() async {
        await pool?.shutdown()
    }

    /// Starts one request's view of the cache: reads the generation once (one round trip) and
    /// fixes "today", so everything the request reads and writes is from one generation and
    /// follows one T-2 boundary, even if a purge or midnight happens meanwhile.
    ///
    /// The generation is read with `GenerationScripts.read`, which never goes below the newest
    /// generation this process has seen: when Redis lost its state (restart without
    /// persistence, FLUSHALL, failover to a lagging replica) it is moved to a fresh value above
    /// every generation in use, so caching goes on at once and nothing written before a purge can
    /// come back. When Redis cannot be reached the session still uses the in-process layer,
    /// under the last generation seen (or `offlineGeneration` when none was ever seen).
    ///
    /// - Parameter countsAsRequest: false for looks at the cache that are not requests (the
    ///   server-info call), so the figures count only backtests and batches.
    package func openSession(countsAsRequest: Bool = true) async -> CacheSession {
        let now = clock.now.unixSeconds
        let lastCacheable = CacheHorizon.lastCacheableDate(atUnixSeconds: now)
        var generation: Int64?
        var usesRedis = false
        if let pool {
            let floor = state.withLockedValue { $0.latestGeneration } ?? -1
            do {
                let reply = try await pool.execute(GenerationScripts.read(keys.generation, floor: floor, unixSeconds: now))
                if let value = reply.integer {
                    generation = value
                    usesRedis = true
                } else {
                    logger.warning("cache: reading the generation failed (\(reply)); this request runs on the in-process layer")
                }
            } catch {
                // Redis is down or hung; the pool has logged it once.
            }
        }
        if pool != nil, generation == nil {
            // Keep serving what this process already holds, under the generation it belongs to.
            generation = state.withLockedValue { $0.latestGeneration } ?? Self.offlineGeneration
        }
        let resolved = generation ?? -1
        let newer = state.withLockedValue { state -> Bool in
            var newer = false
            if usesRedis {
                newer = state.latestGeneration.map { resolved > $0 } ?? false
                state.latestGeneration = max(state.latestGeneration ?? resolved, resolved)
            }
            state.activeSessions[resolved, default: 0] += 1
            return newer
        }
        // Another process purged (or Redis was moved past a loss): what this process holds is
        // keyed by older generations and can never be read again.
        if newer { local.removeAll() }
        if countsAsRequest { metrics.sessionOpened(usesRedis: usesRedis) }
        if usesRedis { metrics.generationInUse(resolved) }
        return CacheSession(
            cache: self, generation: resolved, lastCacheableDate: lastCacheable, usesRedis: usesRedis,
            usesLocal: generation != nil && local.isEnabled)
    }

    /// The generation of sessions opened while Redis has never been reachable by this process:
    /// they use only the in-process layer, under keys no Redis generation can produce.
    public static let offlineGeneration: Int64 = -2

    func sessionFinished(generation: Int64) {
        let ready = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.activeSessions[generation, default: 1] -= 1
            if state.activeSessions[generation] == 0 { state.activeSessions[generation] = nil }
            var ready: [CheckedContinuation<Void, Never>] = []
            for (id, waiter) in state.drainWaiters where !Self.hasSessions(olderThan: waiter.olderThan, state) {
                ready.append(waiter.continuation)
                state.drainWaiters[id] = nil
            }
            return ready
        }
        for continuation in ready { continuation.resume() }
    }

    /// True when `generation` is no longer the newest this process knows: its writes would only
    /// create keys the next sweep deletes, so they are skipped.
    func isSuperseded(_ generation: Int64) -> Bool {
        state.withLockedValue { state in state.latestGeneration.map { generation < $0 } ?? false }
    }

    static func hasSessions(olderThan generation: Int64, _ state: State) -> Bool {
        state.activeSessions.keys.contains { $0 < generation }
    }

    // MARK: Reads and writes used by sessions

    /// Looks `keys` up in the local layer, then the rest in one MGET. A Redis failure reads as
    /// all misses. Returns raw bytes for Redis hits; `local` hits come back decoded.
    func lookup(_ keys: [String], in session: CacheSession) async -> (local: [String: LocalValue], remote: [String: [UInt8]]) {
        let localHits = session.usesLocal ? local.get(keys) : [:]
        let remaining = localHits.count == keys.count ? [] : keys.filter { localHits[$0] == nil }
        var remote: [String: [UInt8]] = [:]
        guard session.usesRedis, let pool, !remaining.isEmpty else { return (localHits, remote) }
        do {
            let reply = try await pool.execute(RedisCommand([Array("MGET".utf8)] + remaining.map { Array($0.utf8) }))
            if case .array(let values) = reply, values.count == remaining.count {
                for (key, value) in zip(remaining, values) {
                    if let bytes = value.bytes { remote[key] = bytes }
                }
            }
        } catch {
            // A miss for every key; the pool has logged the outage once.
        }
        return (localHits, remote)
    }

    /// Remembers decoded values in process memory (for the session's generation).
    func remember(_ values: [(String, LocalValue)], in session: CacheSession) {
        guard session.usesLocal, !isSuperseded(session.generation) else { return }
        for (key, value) in values { local.set(key, value) }
    }

    /// MSET + one EXPIRE per key, pipelined: one round trip. Skipped when Redis is down or the
    /// session's generation has been purged meanwhile.
    func store(_ entries: [(key: String, value: [UInt8])], in session: CacheSession) async {
        guard session.usesRedis, let pool, !entries.isEmpty, !isSuperseded(session.generation) else { return }
        var mset: [[UInt8]] = [Array("MSET".utf8)]
        mset.reserveCapacity(1 + 2 * entries.count)
        for entry in entries {
            mset.append(Array(entry.key.utf8))
            mset.append(entry.value)
        }
        let seconds = String(max(1, options.timeToLive.components.seconds))
        let commands = [RedisCommand(mset)] + entries.map { RedisCommand("EXPIRE", $0.key, seconds) }
        // A failed write is just a write skipped; the pool has logged the outage once.
        if (try? await pool.pipeline(commands)) != nil {
            metrics.wrote(
                keys: entries.count, bytes: entries.reduce(0) { $0 + $1.key.utf8.count + $1.value.count },
                generation: session.generation)
        }
    }
}
