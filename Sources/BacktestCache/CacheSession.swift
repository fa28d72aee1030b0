import BacktestCore
import Logging
import MarketData
import NIOConcurrencyHelpers

/// What one request got from the cache; the server copies it into `RunStatistics`
/// (`cacheHits`, `cacheMisses`, `apiCalls`).
package struct CacheStatistics: Sendable, Hashable {
    /// Month-of-bars and indicator lookups answered by the cache (process memory or Redis).
    package var hits = 0
    /// Lookups that had to go to the source: absent, corrupt, or dated after T-2 (one per symbol
    /// and query for the fresh days).
    package var misses = 0
    /// Requests this session made to the remote vendor (pages count one each).
    package var apiCalls = 0

    package init() {}

    package var hitRate: Double { hits + misses == 0 ? 0 : Double(hits) / Double(hits + misses) }
}

/// One request's (one backtest's or one batch's) view of the cache: a fixed generation and a
/// fixed "today", plus its own counters. Open with `MarketDataCache.openSession()`, use through
/// `CachedMarketData.dailyBars(_:session:)` and `IndicatorCache`, close with `finish()`.
package final class CacheSession: Sendable {
    /// The generation every key of this session uses (-1: no cache for this session).
    package let generation: Int64
    /// T-2 when the session opened: nothing later is read from or written to the cache.
    package let lastCacheableDate: TradingDate
    let usesRedis: Bool
    let usesLocal: Bool
    let cache: MarketDataCache
    private let state = NIOLockedValueBox(State())

    private struct State {
        var statistics = CacheStatistics()
        var symbols: Set<String> = []
        /// How each symbol appears in keys ("AAPL", or "AAPL@fingerprint" for file sources).
        var keySymbols: [String: String] = [:]
        var keySource: String?
        var pendingWrites: [Task<Void, Never>] = []
        var isFinished = false
    }

    init(cache: MarketDataCache, generation: Int64, lastCacheableDate: TradingDate, usesRedis: Bool, usesLocal: Bool) {
        self.cache = cache
        self.generation = generation
        self.lastCacheableDate = lastCacheableDate
        self.usesRedis = usesRedis
        self.usesLocal = usesLocal
    }

    deinit {
        // A session dropped without finish() must not hold up a purge's sweep.
        if !state.withLockedValue({ $0.isFinished }) { cache.sessionFinished(generation: generation) }
    }

    /// True when Redis answered when the session opened (its reads and writes go to Redis).
    public var isUsingRedis: Bool { usesRedis }

    /// True when the cache takes part at all (Redis reachable at open, or process memory usable).
    package var isCaching: Bool { usesRedis || usesLocal }

    package var statistics: CacheStatistics { state.withLockedValue { $0.statistics } }

    /// Waits for this session's write-backs, logs one line of counts, and releases the
    /// generation (a purge waiting to sweep it may proceed). Idempotent.
    @discardableResult
    package func finish() async -> CacheStatistics {
        let writes = state.withLockedValue { state in
            defer { state.pendingWrites.removeAll() }
            return state.pendingWrites
        }
        for write in writes { await write.value }
        let (first, statistics, symbols) = state.withLockedValue { state in
            defer { state.isFinished = true }
            return (!state.isFinished, state.statistics, state.symbols)
        }
        if first {
            cache.sessionFinished(generation: generation)
            // A session that looked nothing up (server info) has nothing to say.
            if statistics.hits + statistics.misses > 0 {
                let rate = (statistics.hitRate * 1000).rounded() / 10
                cache.logger.info(
                    "cache: \(statistics.hits) hits, \(statistics.misses) misses (\(rate)%) for \(LogText(symbols.sorted().joined(separator: ","), limit: LogText.messageLimit))")
            }
        }
        return statistics
    }

    func count(hits: Int = 0, misses: Int = 0, apiCalls: Int = 0, symbols: [String] = []) {
        if hits != 0 || misses != 0 { cache.metrics.count(hits: hits, misses: misses) }
        state.withLockedValue { state in
            state.statistics.hits += hits
            state.statistics.misses += misses
            state.statistics.apiCalls += apiCalls
            state.symbols.formUnion(symbols)
        }
    }

    /// The source and symbol parts of this session's keys, fixed once per symbol for the whole
    /// request (so bars and the indicators computed from them use one file version).
    func keyParts(for symbols: [String], upstream: any MarketDataProvider) async throws -> (source: String, symbols: [String: String]) {
        let source = Self.sourceTag(upstream)
        let known = state.withLockedValue { state in symbols.compactMap { s in state.keySymbols[s].map { (s, $0) } } }
        var parts = Dictionary(known, uniquingKeysWith: { first, _ in first })
        let missing = symbols.filter { parts[$0] == nil }
        if !missing.isEmpty {
            let fingerprints = try await upstream.cacheFingerprints(missing)
            for symbol in missing { parts[symbol] = fingerprints[symbol].map { "\(symbol)@\($0)" } ?? symbol }
            state.withLockedValue { state in
                state.keySource = source
                for symbol in missing where state.keySymbols[symbol] == nil { state.keySymbols[symbol] = parts[symbol] }
            }
        }
        return (source, parts)
    }

    /// Key parts recorded by `keyParts(for:upstream:)` for `ticker`, if its bars were fetched
    /// through this session.
    func recordedKeyParts(for ticker: String) -> (source: String, symbol: String)? {
        state.withLockedValue { state in
            guard let source = state.keySource, let symbol = state.keySymbols[ticker] else { return nil }
            return (source, symbol)
        }
    }

    /// The source's name, followed by a hash of its `cacheIdentity` when that says more than the
    /// name (an Alpaca base URL and feed, a files directory, a demo seed).
    static func sourceTag(_ upstream: any MarketDataProvider) -> String {
        let identity = upstream.cacheIdentity
        return identity == upstream.name ? upstream.name : "\(upstream.name)-\(ContentFingerprint.hex(identity.utf8).prefix(12))"
    }

    /// Runs a write-back without delaying the answer; `finish()` waits for it.
    func writeBehind(_ work: @escaping @Sendable () async -> Void) {
        let task = Task { await work() }
        state.withLockedValue { $0.pendingWrites.append(task) }
    }
}
