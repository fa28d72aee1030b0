import BacktestCore

/// Identifies one indicator series: the spirit of `indicator:{ticker}:{type}:{params}:{date}`,
/// with the whole date range instead of one date because series are read and written whole.
package struct IndicatorCacheKey: Hashable, Sendable {
    /// A checked ticker, so a key never holds what the syntax forbids (':', '*', spaces, ...).
    package var ticker: Ticker
    /// The engine's canonical key, e.g. "sma:50" or "macd:12,26,9" (parameters included).
    package var indicator: String
    package var adjustment: PriceAdjustment
    /// The data source's name ("alpaca", "files", "demo"): sources may disagree on prices.
    package var source: String
    /// The data epoch the series is computed from (`MarketDataProvider.dataEpoch`).
    package var from: TradingDate
    /// The last date of the series; must be at most the session's `lastCacheableDate` to be stored.
    package var through: TradingDate
    /// The ticker's part of the Redis key when the session's bars of it carry a data fingerprint
    /// ("AAPL@0f3c…", set by `tagged(by:)`); nil means the ticker's symbol.
    package var keySymbol: String?

    package init(ticker: Ticker, indicator: String, adjustment: PriceAdjustment, source: String, from: TradingDate, through: TradingDate) {
        self.ticker = ticker
        self.indicator = indicator
        self.adjustment = adjustment
        self.source = source
        self.from = from
        self.through = through
    }
}

/// Indicator series cache: `[Double]` aligned with the caller's trading dates from `from`
/// through `through` (NaN allowed), in the same checksummed packed format as bars, behind the
/// same in-process layer. Shared by every client (values depend only on source data).
///
/// Measured (docs/cache.md): for cheap indicators such as a 6,000-point SMA, recomputing is
/// about as fast as a Redis round trip, so the in-process layer does the real work; Redis pays
/// off for expensive series and across server restarts.
package struct IndicatorCache: Sendable {
    package let cache: MarketDataCache

    package init(cache: MarketDataCache) {
        self.cache = cache
    }

    /// The cached series, or nil (a miss) when absent, corrupt, of another length than
    /// `expectedCount` (when given), dated after T-2, or when the cache is unavailable.
    package func get(_ key: IndicatorCacheKey, expectedCount: Int? = nil, session: CacheSession) async -> [Double]? {
        guard session.isCaching, key.through <= session.lastCacheableDate, key.from <= key.through else {
            session.count(misses: 1, symbols: [key.ticker.symbol])
            return nil
        }
        let redisKey = cache.keys.indicator(generation: session.generation, key: key.tagged(by: session))
        let (local, remote) = await cache.lookup([redisKey], in: session)
        var values: [Double]?
        if case .series(let series)? = local[redisKey] {
            values = series
        } else if let bytes = remote[redisKey] {
            if let decoded = PackedSeries.decode(bytes, from: key.from, through: key.through, key: redisKey) {
                values = decoded
                cache.remember([(redisKey, .series(decoded))], in: session)
            } else {
                cache.metrics.rejected(1)
                cache.logger.warning(
                    "cache: \(PackedValue.isForeign(bytes, key: redisKey) ? "a value stored under another key's name" : "a corrupt value") ignored for \(LogText(redisKey, limit: LogText.messageLimit)); it will be overwritten")
            }
        }
        if let values, expectedCount.map({ $0 == values.count }) ?? true {
            session.count(hits: 1, symbols: [key.ticker.symbol])
            return values
        }
        session.count(misses: 1, symbols: [key.ticker.symbol])
        return nil
    }

    /// Stores a series computed by the caller. Returns false (and stores nothing) when
    /// `key.through` is after the session's T-2 date or the cache is unavailable.
    @discardableResult
    package func put(_ key: IndicatorCacheKey, values: [Double], session: CacheSession) async -> Bool {
        guard session.isCaching, key.through <= session.lastCacheableDate, key.from <= key.through else { return false }
        let redisKey = cache.keys.indicator(generation: session.generation, key: key.tagged(by: session))
        cache.remember([(redisKey, .series(values))], in: session)
        await cache.store([(redisKey, PackedSeries.encode(values, from: key.from, through: key.through, key: redisKey))], in: session)
        return true
    }
}

extension IndicatorCacheKey {
    /// The key with the source and ticker parts the session used for the ticker's bars (source
    /// instance hash, file fingerprint), so a series is never read for other data than it was
    /// computed from. Unchanged when the session did not fetch the ticker's bars.
    func tagged(by session: CacheSession) -> IndicatorCacheKey {
        guard let parts = session.recordedKeyParts(for: ticker.symbol) else { return self }
        var tagged = self
        tagged.source = parts.source
        tagged.keySymbol = parts.symbol
        return tagged
    }
}
