import BacktestCore

/// What a backtest asks the data layer for: daily bars of some symbols over one date range.
package struct BarQuery: Hashable, Sendable, CustomStringConvertible {
    /// Upper-case, de-duplicated and sorted, so equal questions compare (and coalesce) equal.
    package let symbols: [String]
    package let range: ClosedRange<TradingDate>
    package let adjustment: PriceAdjustment

    package init(symbols: some Sequence<String>, range: ClosedRange<TradingDate>, adjustment: PriceAdjustment) {
        self.symbols = Array(Set(symbols.map { $0.uppercased() })).sorted()
        self.range = range
        self.adjustment = adjustment
    }

    package var description: String {
        "\(symbols.joined(separator: ",")) \(range.lowerBound)...\(range.upperBound) (\(adjustment.rawValue))"
    }
}

/// The answer to a `BarQuery`.
package struct BarSet: Sendable {
    /// Bars of every symbol that has data in the range, adjusted as the query asked: the
    /// adjustment is as of the newest data the source knows (like the vendor's), so a value on a
    /// date does not depend on the range asked for.
    package var bars: [String: DailyBars]
    /// Requested symbols the source knows nothing about in the range ("no data" is not an error
    /// at this level; the engine decides what it means for a strategy).
    package var missing: [String]
    /// Requests made to a remote vendor to answer (pages count one each); 0 for local sources.
    package var apiCalls: Int
    /// Things a person should know, e.g. `.noDataBefore` "AAPL: no data before 1999-11-01; using
    /// 1999-11-01...2005-12-30".
    package var warnings: [BacktestWarning]

    package init(bars: [String: DailyBars] = [:], missing: [String] = [], apiCalls: Int = 0, warnings: [BacktestWarning] = []) {
        self.bars = bars
        self.missing = missing
        self.apiCalls = apiCalls
        self.warnings = warnings
    }
}

/// A source of daily bars: Alpaca's API, a directory of CSV files, or the embedded demo.
///
/// Implementations are safe to call concurrently. They throw `BacktestError`: INVALID_ARGUMENT
/// for a malformed symbol, UNAVAILABLE when the vendor cannot be reached after retries,
/// UNAUTHENTICATED / PERMISSION_DENIED for key problems.
package protocol MarketDataProvider: Sendable {
    /// Short name reported in results and logs: "alpaca", "files", "demo".
    var name: String { get }

    /// The first date indicators are computed from. Indicator values are defined over all
    /// history from this epoch, so a value on a date never depends on the backtest's start and
    /// can be cached by date.
    var dataEpoch: TradingDate { get }

    func dailyBars(_ query: BarQuery) async throws -> BarSet

    /// Warnings that hold for every answer of this source (the demo source's "synthetic
    /// prices"), so that layers answering without asking it (the cache) still carry them.
    var standingWarnings: [BacktestWarning] { get }

    /// What distinguishes this source's data from another instance's of the same kind, for
    /// cache keys: Alpaca's base URL and feed, the files' directory, the demo's seed. Two
    /// servers sharing one Redis share cached data only when this (and `name`) are equal.
    /// Defaults to `name`.
    var cacheIdentity: String { get }

    /// A fingerprint of the data behind each of `symbols` (upper-case), for cache keys: the
    /// content hash of a ticker's CSV file, so an edited file is never answered from the cache.
    /// Symbols without one are absent from the answer (the default: none). Sources whose data
    /// only changes by purges (Alpaca) have none.
    func cacheFingerprints(_ symbols: [String]) async throws -> [String: String]
}

extension MarketDataProvider {
    package var standingWarnings: [BacktestWarning] { [] }
    package var cacheIdentity: String { name }
    package func cacheFingerprints(_ symbols: [String]) async throws -> [String: String] { [:] }
}

/// FNV-1a-64 as 16 hex digits: the fingerprints of `MarketDataProvider.cacheFingerprints` and
/// of cache identities (change detection, not security).
package enum ContentFingerprint {
    package static func hex<C: Collection<UInt8>>(_ bytes: C) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        let digits = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
