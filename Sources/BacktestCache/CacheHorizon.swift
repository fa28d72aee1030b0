import BacktestCore
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
