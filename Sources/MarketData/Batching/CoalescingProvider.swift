import BacktestCore
import Logging

/// What one consumer lacks: a symbol's bars over a range (typically the part its cache misses).
package struct BarNeed: Hashable, Sendable, CustomStringConvertible {
    package var symbol: String
    package var range: ClosedRange<TradingDate>

    package init(symbol: String, range: ClosedRange<TradingDate>) {
        self.symbol = symbol.uppercased()
        self.range = range
    }

    package var description: String { "\(symbol) \(range.lowerBound)...\(range.upperBound)" }
}

/// A decorator over any provider that makes fetching cheap for the vendor:
///
/// - identical concurrent queries are single-flighted: three users asking for the same bars at
///   once cause one underlying fetch, and all three get its result or its error;
/// - `fetch(_:adjustment:)` groups needs with the same range into one multi-symbol query
///   (one Alpaca request plus its pages instead of one per ticker).
///
/// The cache layer sits in front of this and asks only for what it misses.
package final class CoalescingProvider: MarketDataProvider {
    package let base: any MarketDataProvider
    package var name: String { base.name }
    package var dataEpoch: TradingDate { base.dataEpoch }
    package var standingWarnings: [BacktestWarning] { base.standingWarnings }
    package var cacheIdentity: String { base.cacheIdentity }

    package func cacheFingerprints(_ symbols: [String]) async throws -> [String: String] {
        try await base.cacheFingerprints(symbols)
    }

    private let flights = SingleFlight<BarQuery, BarSet>()
    private let calendar: MarketCalendar
    private let logger: Logger

    package init(
        _ base: any MarketDataProvider, calendar: MarketCalendar = .nyse,
        logger: Logger = Logger(label: "backtestd.marketdata.fetch")
    ) {
        self.base = base
        self.calendar = calendar
        self.logger = logger
    }

    /// The base provider's answer; identical queries in flight share one fetch. Each sharer
    /// sees the same `apiCalls` (the cost of the fetch it waited for).
    package func dailyBars(_ query: BarQuery) async throws -> BarSet {
        let base = self.base
        return try await flights.run(query) { try await base.dailyBars(query) }.value
    }

    /// Callers waiting for `query` right now (lets tests build a known interleaving).
    func waiterCount(for query: BarQuery) -> Int {
        flights.waiterCount(query)
    }

    /// Fetches every need, one multi-symbol query per distinct range, the queries concurrently.
    ///
    /// Logs "Fetched N tickers in K API calls (was M calls)", where M is what fetching one
    /// symbol for one day per call would have cost (trading days × tickers): the naive
    /// per-day cache fill this replaces. A symbol needed over two ranges gets both, merged.
    /// Throws the first error of any query (an invalid ticker fails the whole fetch, so nothing
    /// partial is cached).
    package func fetch(_ needs: [BarNeed], adjustment: PriceAdjustment) async throws -> BarSet {
        let byRange = Dictionary(grouping: Set(needs), by: \.range)
        var result = BarSet()
        try await withThrowingTaskGroup(of: BarSet.self) { group in
            for (range, needs) in byRange {
                let query = BarQuery(symbols: needs.map(\.symbol), range: range, adjustment: adjustment)
                group.addTask { try await self.dailyBars(query) }
            }
            for try await answer in group { result.absorb(answer) }
        }
        result.normalize()
        result.warnings = uniqued(result.warnings)
        let tickers = Set(needs.map(\.symbol)).count
        if result.apiCalls > 0 {
            let naive = byRange.reduce(0) { $0 + calendar.tradingDays(in: $1.key).count * $1.value.count }
            logger.info(
                "Fetched \(tickers) ticker\(tickers == 1 ? "" : "s") in \(result.apiCalls) API call\(result.apiCalls == 1 ? "" : "s") (was \(naive) calls)",
                metadata: ["provider": "\(name)", "queries": "\(byRange.count)"])
        } else {
            logger.debug("Loaded \(tickers) tickers from \(name) in \(byRange.count) queries")
        }
        return result
    }
}

/// Unique elements in first-seen order.
private func uniqued(_ items: [BacktestWarning]) -> [BacktestWarning] {
    var seen = Set<BacktestWarning>()
    return items.filter { seen.insert($0).inserted }
}
