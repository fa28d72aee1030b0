import BacktestCore
import MarketData

/// A `MarketDataProvider` that answers from the cache what it can and asks `upstream` for the
/// rest, writing back what may be cached (dates up to T-2) one key per ticker and month.
///
/// Per query: one batched lookup (process memory, then one MGET), then for each symbol the hull
/// of the days not covered; symbols sharing the same hull are fetched in one multi-symbol call,
/// identical fetches in flight are shared, fresh and cached bars are merged, and eligible months
/// are written behind the answer (MSET + EXPIRE, pipelined). Months with no bars (before a
/// listing, after a delisting) are cached as empty months, so such tickers cost no fetch either.
/// Errors from the source (an invalid ticker, an unreachable vendor) are never cached.
package struct CachedMarketData: MarketDataProvider {
    package let upstream: any MarketDataProvider
    package let cache: MarketDataCache
    /// Identical upstream fetches in flight, shared; an entry stays until its months are written
    /// back (`SingleFlight`'s settle), keyed by generation, source and query.
    let inflight = SingleFlight<FillKey, BarSet>()

    struct FillKey: Hashable, Sendable {
        var generation: Int64
        var source: String
        var query: BarQuery
    }

    package init(upstream: any MarketDataProvider, cache: MarketDataCache) {
        self.upstream = upstream
        self.cache = cache
    }

    package var name: String { upstream.name }
    package var dataEpoch: TradingDate { upstream.dataEpoch }
    package var standingWarnings: [BacktestWarning] { upstream.standingWarnings }

    /// A one-request session of its own. Prefer `dailyBars(_:session:)` to get the counts.
    package func dailyBars(_ query: BarQuery) async throws -> BarSet {
        let session = await cache.openSession()
        defer { Task { await session.finish() } }
        return try await dailyBars(query, session: session)
    }

    /// A provider bound to `session`, for code that takes any `MarketDataProvider`.
    package func bound(to session: CacheSession) -> some MarketDataProvider {
        SessionBoundMarketData(base: self, session: session)
    }

    package func dailyBars(_ query: BarQuery, session: CacheSession) async throws -> BarSet {
        let horizon = session.lastCacheableDate
        let range = query.range
        let extendsPastHorizon = range.upperBound > horizon
        var attempt = 0
        while true {
            attempt += 1
            let epoch = inflight.completedFlights
            let parts = session.isCaching ? try await session.keyParts(for: query.symbols, upstream: upstream) : (upstream.name, [:])
            let lookup = await lookUp(query, parts: parts, session: session)
            // The hull of uncovered days per symbol, grouped so symbols that share it share a call.
            var groups: [ClosedRange<TradingDate>: [String]] = [:]
            for symbol in query.symbols {
                if let fetchRange = Self.fetchRange(
                    uncovered: lookup.uncovered[symbol] ?? [], range: range, horizon: horizon,
                    extendsPastHorizon: extendsPastHorizon)
                {
                    groups[fetchRange, default: []].append(symbol)
                }
            }
            let fetched: Fetched
            do {
                fetched = try await fetch(
                    groups, adjustment: query.adjustment, parts: parts, session: session, lookedUpAt: attempt < 3 ? epoch : nil)
            } catch is SingleFlight<FillKey, BarSet>.LookAgain {
                continue
            }
            session.count(
                hits: lookup.hits, misses: lookup.misses + (extendsPastHorizon ? query.symbols.count : 0),
                symbols: query.symbols)
            if lookup.corrupt > 0 || lookup.foreign > 0 {
                cache.metrics.rejected(lookup.corrupt + lookup.foreign)
                if lookup.foreign > 0 {
                    cache.logger.warning(
                        "cache: \(lookup.foreign) values stored under another key's name ignored for \(LogText("\(query)", limit: LogText.messageLimit)); they will be overwritten")
                }
                if lookup.corrupt > 0 {
                    cache.logger.warning("cache: \(lookup.corrupt) corrupt or outdated values ignored for \(LogText("\(query)", limit: LogText.messageLimit)); they will be overwritten")
                }
            }
            return assemble(query, lookup: lookup, fetched: fetched, horizon: horizon)
        }
    }

    private func assemble(_ query: BarQuery, lookup: Lookup, fetched: Fetched, horizon: TradingDate) -> BarSet {
        let range = query.range
        var answer = BarSet()
        var warnings = upstream.standingWarnings
        for symbol in query.symbols {
            var bars = DailyBars(symbol: symbol)
            for chunk in lookup.covered[symbol] ?? [] {
                let neededEnd = min(chunk.month.lastDay, range.upperBound, horizon)
                let from = max(chunk.month.firstDay, range.lowerBound)
                if from <= neededEnd { bars.appendAll(chunk.bars.slice(from...neededEnd)) }
            }
            if let fresh = fetched.bars[symbol] {
                bars = bars.merged(with: fresh.slice(range))
            }
            if let first = bars.firstDate, let last = bars.lastDate {
                answer.bars[symbol] = bars
                // Derived from the assembled bars, so a fully warm answer warns like a cold one.
                if let warning = BarSet.listingWarning(symbol, first: first, last: last, range: range) {
                    warnings.append(warning)
                }
            } else {
                answer.missing.append(symbol)
            }
        }
        // The fetches' own listing warnings describe only the months they fetched.
        for set in fetched.sets {
            for warning in set.warnings
            where !warnings.contains(warning) && !query.symbols.contains(where: { BarSet.isListingWarning(warning, of: $0) }) {
                warnings.append(warning)
            }
        }
        answer.warnings = warnings
        answer.apiCalls = fetched.apiCalls
        return answer
    }

    // MARK: Lookup

    private struct Lookup {
        var covered: [String: [MonthOfBars]] = [:]
        var uncovered: [String: [CacheMonth]] = [:]
        var hits = 0
        var misses = 0
        var corrupt = 0
        /// Intact values written under another key (copied or misplaced).
        var foreign = 0
    }

    private func lookUp(_ query: BarQuery, parts: (source: String, symbols: [String: String]), session: CacheSession) async -> Lookup {
        let horizon = session.lastCacheableDate
        let range = query.range
        var result = Lookup()
        guard range.lowerBound <= horizon else { return result }
        let months = CacheMonth.months(in: range.lowerBound...min(range.upperBound, horizon))
        var keys: [String] = []
        keys.reserveCapacity(months.count * query.symbols.count)
        let monthNumbers = months.map { String($0.number) }
        // Keys are made of checked tickers only; anything else is a miss (the source rejects it).
        let tickers = query.symbols.map(Ticker.init)
        for ticker in tickers {
            guard let ticker else { continue }
            let prefix = cache.keys.barsPrefix(
                generation: session.generation, source: parts.source, adjustment: query.adjustment, symbol: parts.symbols[ticker.symbol] ?? ticker.symbol)
            for number in monthNumbers { keys.append(prefix + number) }
        }
        let (local, remote) = session.isCaching ? await cache.lookup(keys, in: session) : ([:], [:])
        var decoded: [(String, LocalValue)] = []
        var index = 0
        for (symbol, ticker) in zip(query.symbols, tickers) {
            guard ticker != nil else {
                result.uncovered[symbol, default: []].append(contentsOf: months)
                result.misses += months.count
                continue
            }
            for month in months {
                let key = keys[index]
                index += 1
                var chunk: MonthOfBars?
                if case .month(let cached)? = local[key] {
                    chunk = cached
                } else if let bytes = remote[key] {
                    chunk = MonthOfBars.decode(bytes, symbol: symbol, month: month, key: key)
                    if let chunk {
                        decoded.append((key, .month(chunk)))
                    } else if PackedValue.isForeign(bytes, key: key) {
                        result.foreign += 1
                    } else {
                        result.corrupt += 1
                    }
                }
                let neededEnd = min(month.lastDay, range.upperBound, horizon)
                if let chunk, chunk.covers(through: neededEnd) {
                    result.covered[symbol, default: []].append(chunk)
                    result.hits += 1
                } else {
                    result.uncovered[symbol, default: []].append(month)
                    result.misses += 1
                }
            }
        }
        cache.remember(decoded, in: session)
        return result
    }

    /// What to ask the source for one symbol: from the first uncovered month's first day (so its
    /// month can be stored complete) to the last uncovered month's end (capped at T-2), or to
    /// the query's end when it runs past T-2. Nil when everything is cached.
    static func fetchRange(
        uncovered: [CacheMonth], range: ClosedRange<TradingDate>, horizon: TradingDate, extendsPastHorizon: Bool
    ) -> ClosedRange<TradingDate>? {
        if let first = uncovered.first, let last = uncovered.last {
            let end = extendsPastHorizon ? range.upperBound : min(last.lastDay, horizon)
            return first.firstDay...end
        }
        if extendsPastHorizon { return max(range.lowerBound, horizon.advanced(by: 1))...range.upperBound }
        return nil
    }
}

/// `CachedMarketData` seen through one session.
struct SessionBoundMarketData: MarketDataProvider {
    let base: CachedMarketData
    let session: CacheSession
    var name: String { base.name }
    var dataEpoch: TradingDate { base.dataEpoch }
    var standingWarnings: [BacktestWarning] { base.standingWarnings }
    func dailyBars(_ query: BarQuery) async throws -> BarSet { try await base.dailyBars(query, session: session) }
}

extension DailyBars {
    /// Appends bars that all come after `self`'s last date.
    mutating func appendAll(_ other: DailyBars) {
        dates.append(contentsOf: other.dates)
        open.append(contentsOf: other.open)
        high.append(contentsOf: other.high)
        low.append(contentsOf: other.low)
        close.append(contentsOf: other.close)
        volume.append(contentsOf: other.volume)
        dividend.append(contentsOf: other.dividend)
        splitRatio.append(contentsOf: other.splitRatio)
    }
}
