/// Wall-clock time in America/New_York, from and to Unix time, with the US daylight-saving
/// rules written out rather than read from the system's tz database: results then do not depend
/// on whether the machine has tzdata installed, and the rules are testable.
///
/// Rules: since 2007 DST runs from the second Sunday of March 2:00 EST to the first Sunday of
/// November 2:00 EDT; 1987-2006 from the first Sunday of April to the last Sunday of October.
/// Earlier years use the 1987 rule (no data of ours is that old).
public enum NewYorkTime {
    public struct LocalTime: Sendable, Hashable, CustomStringConvertible {
        public var date: TradingDate
        public var hour: Int
        public var minute: Int
        public var second: Int
        /// -4 h (EDT) or -5 h (EST), in seconds.
        public var utcOffsetSeconds: Int

        public var description: String {
            func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
            return "\(date.iso) \(two(hour)):\(two(minute)):\(two(second)) \(utcOffsetSeconds == -4 * 3600 ? "EDT" : "EST")"
        }
    }

    /// The New York local time at a Unix instant.
    public static func localTime(unixSeconds: Int64) -> LocalTime {
        let offset = utcOffset(unixSeconds: unixSeconds)
        let local = unixSeconds + Int64(offset)
        let days = local >= 0 ? local / 86_400 : (local - 86_399) / 86_400
        let secondOfDay = Int(local - days * 86_400)
        return LocalTime(
            date: TradingDate(daysSinceEpoch: Int32(days)), hour: secondOfDay / 3600,
            minute: secondOfDay / 60 % 60, second: secondOfDay % 60, utcOffsetSeconds: offset)
    }

    /// Today's date in New York at a Unix instant.
    public static func date(unixSeconds: Int64) -> TradingDate {
        localTime(unixSeconds: unixSeconds).date
    }

    /// The Unix instant of a New York wall-clock time. In the repeated hour of November the
    /// earlier (EDT) instant is returned; a time in the skipped hour of March is read as EST
    /// (i.e. it lands one hour later in wall-clock terms), so a daily schedule never skips a day.
    public static func unixSeconds(date: TradingDate, hour: Int, minute: Int, second: Int = 0) -> Int64 {
        let localSeconds = Int64(date.daysSinceEpoch) * 86_400 + Int64(hour * 3600 + minute * 60 + second)
        let asDaylight = localSeconds + 4 * 3600
        if utcOffset(unixSeconds: asDaylight) == -4 * 3600 { return asDaylight }
        return localSeconds + 5 * 3600
    }

    /// -4 h during daylight-saving time, -5 h otherwise, in seconds.
    public static func utcOffset(unixSeconds: Int64) -> Int {
        let (start, end) = daylightSavingBounds(year: TradingDate(daysSinceEpoch: Int32(unixSeconds / 86_400)).year)
        return unixSeconds >= start && unixSeconds < end ? -4 * 3600 : -5 * 3600
    }

    /// The Unix instants DST starts (2:00 EST) and ends (2:00 EDT) in `year`.
    static func daylightSavingBounds(year: Int) -> (start: Int64, end: Int64) {
        let startDay: TradingDate
        let endDay: TradingDate
        if year >= 2007 {
            startDay = MarketCalendar.nthWeekday(2, weekday: 0, month: 3, year: year)
            endDay = MarketCalendar.nthWeekday(1, weekday: 0, month: 11, year: year)
        } else {
            startDay = MarketCalendar.nthWeekday(1, weekday: 0, month: 4, year: year)
            endDay = MarketCalendar.lastWeekday(0, month: 10, year: year)
        }
        let start = Int64(startDay.daysSinceEpoch) * 86_400 + 2 * 3600 + 5 * 3600
        let end = Int64(endDay.daysSinceEpoch) * 86_400 + 2 * 3600 + 4 * 3600
        return (start, end)
    }
}
