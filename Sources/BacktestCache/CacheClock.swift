import BacktestCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Wall-clock time for the cache: "today" for the T-2 rule and the purge schedule. Injectable
/// so tests can stand on any date and drive the scheduler through DST changes without waiting.
package protocol CacheClock: Sendable {
    /// Seconds since 1970-01-01 UTC.
    func unixSeconds() -> Int64
    /// Returns once `unixSeconds()` has reached `deadline` (or throws on task cancellation).
    func sleep(untilUnixSeconds deadline: Int64) async throws
}

/// The machine's clock.
package struct SystemCacheClock: CacheClock {
    package init() {}

    package func unixSeconds() -> Int64 {
        SystemCacheClock.epochNow()
    }

    package func sleep(untilUnixSeconds deadline: Int64) async throws {
        // Sleep in slices of at most a minute so a suspended laptop or clock change is noticed.
        while true {
            let remaining = deadline - unixSeconds()
            if remaining <= 0 { return }
            try await Task.sleep(for: .seconds(min(remaining, 60)))
        }
    }

    private static func epochNow() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec)
    }
}

/// The T-2 rule: only bars and indicator values dated on or before the trading day two trading
/// days before today (New York date, NYSE calendar) are cached; T-1 and T-0 are always fetched
/// fresh, because vendors still correct the last days' bars.
package enum CacheHorizon {
    /// The last cacheable date at `unixSeconds`.
    package static func lastCacheableDate(atUnixSeconds unixSeconds: Int64, calendar: MarketCalendar = .nyse) -> TradingDate {
        calendar.tradingDay(2, before: NewYorkTime.date(unixSeconds: unixSeconds))
    }

    /// `shouldCache(date)` of the issue.
    package static func shouldCache(_ date: TradingDate, atUnixSeconds unixSeconds: Int64) -> Bool {
        date <= lastCacheableDate(atUnixSeconds: unixSeconds)
    }
}
