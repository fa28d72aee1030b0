/// The US equity market calendar (NYSE rules): weekends, exchange holidays with their weekend
/// observance rules, one-off closures, and 1:00 PM early closes.
///
/// Rules are computed, not listed, so the calendar extends to any year; one-off closures are a
/// list. Verified against SPY's trading days 1999-11 .. 2020-08 (MarketDataTests).
public struct MarketCalendar: Sendable {
    public static let nyse = MarketCalendar()

    /// Unscheduled full-day closures (national mourning, 9/11, hurricane Sandy).
    public static let oneOffClosures: [TradingDate: String] = {
        let closures = [
            ("1994-04-27", "National day of mourning (Richard Nixon)"),
            ("2001-09-11", "September 11 attacks"), ("2001-09-12", "September 11 attacks"),
            ("2001-09-13", "September 11 attacks"), ("2001-09-14", "September 11 attacks"),
            ("2004-06-11", "National day of mourning (Ronald Reagan)"),
            ("2007-01-02", "National day of mourning (Gerald Ford)"),
            ("2012-10-29", "Hurricane Sandy"), ("2012-10-30", "Hurricane Sandy"),
            ("2018-12-05", "National day of mourning (George H. W. Bush)"),
            ("2025-01-09", "National day of mourning (Jimmy Carter)"),
        ]
        var table: [TradingDate: String] = [:]
        for (iso, name) in closures { table[TradingDate(iso: iso)!] = name }
        return table
    }()

    public init() {}

    public func isTradingDay(_ date: TradingDate) -> Bool {
        !date.isWeekend && closure(on: date) == nil
    }

    /// The holiday or closure that shuts the market on a weekday, if any.
    public func closure(on date: TradingDate) -> String? {
        if let name = MarketCalendar.oneOffClosures[date] { return name }
        return holidays(in: date.year)[date]
    }

    /// True on the scheduled 1:00 PM closes: July 3 when Independence Day falls Tuesday to
    /// Friday, the day after Thanksgiving, and Christmas Eve on a weekday that is not itself the
    /// observed Christmas holiday. (Daily bars are unaffected; intraday logic needs it.)
    public func isEarlyClose(_ date: TradingDate) -> Bool {
        guard isTradingDay(date) else { return false }
        let year = date.year
        if date.month == 7 && date.day == 3 {
            return (2...5).contains(TradingDate(year: year, month: 7, day: 4)!.weekday)
        }
        if date == MarketCalendar.nthWeekday(4, weekday: 4, month: 11, year: year).advanced(by: 1) {
            return true
        }
        return date.month == 12 && date.day == 24
    }

    /// The close in New York local time: (16, 0), or (13, 0) on early closes; nil when closed.
    public func closeTime(on date: TradingDate) -> (hour: Int, minute: Int)? {
        guard isTradingDay(date) else { return nil }
        return isEarlyClose(date) ? (13, 0) : (16, 0)
    }

    /// Every trading day in `range`, ascending.
    public func tradingDays(in range: ClosedRange<TradingDate>) -> [TradingDate] {
        var days: [TradingDate] = []
        days.reserveCapacity(range.lowerBound.distance(to: range.upperBound) * 5 / 7 + 2)
        var date = range.lowerBound
        while date <= range.upperBound {
            if isTradingDay(date) { days.append(date) }
            date = date.advanced(by: 1)
        }
        return days
    }

    /// How many trading days `range` holds: `tradingDays(in:).count`, computed from the weekday
    /// count less the closures, per year rather than per day (a 20-year range costs 20 holiday
    /// tables, not 5,000), for callers that count often.
    public func tradingDayCount(in range: ClosedRange<TradingDate>) -> Int {
        let days = range.lowerBound.distance(to: range.upperBound) + 1
        var count = days / 7 * 5
        var date = range.lowerBound.advanced(by: days / 7 * 7)
        while date <= range.upperBound {
            if !date.isWeekend { count += 1 }
            date = date.advanced(by: 1)
        }
        var closed = Set<TradingDate>()
        for year in range.lowerBound.year...range.upperBound.year {
            // `closure(on:)` reads a date's own year's table, so only that year's dates count.
            for day in holidays(in: year).keys where day.year == year && range.contains(day) && !day.isWeekend {
                closed.insert(day)
            }
        }
        for day in MarketCalendar.oneOffClosures.keys where range.contains(day) && !day.isWeekend { closed.insert(day) }
        return count - closed.count
    }

    /// The first trading day strictly after `date`.
    public func nextTradingDay(after date: TradingDate) -> TradingDate {
        var day = date.advanced(by: 1)
        while !isTradingDay(day) { day = day.advanced(by: 1) }
        return day
    }

    /// The last trading day strictly before `date`.
    public func previousTradingDay(before date: TradingDate) -> TradingDate {
        var day = date.advanced(by: -1)
        while !isTradingDay(day) { day = day.advanced(by: -1) }
        return day
    }

    /// "T-n": the trading day n trading days before `date` (T-0 is `date` itself when it is a
    /// trading day, else the last trading day before it). Used by the cache's T-2 rule.
    public func tradingDay(_ n: Int, before date: TradingDate) -> TradingDate {
        var day = isTradingDay(date) ? date : previousTradingDay(before: date)
        for _ in 0..<max(0, n) { day = previousTradingDay(before: day) }
        return day
    }

    /// The weekday holidays of `year`, each with its name, after weekend observance:
    /// Saturday holidays move to Friday and Sunday holidays to Monday, except New Year's Day on
    /// a Saturday, which the NYSE does not observe on the Friday before (that Friday closes a
    /// fiscal year).
    public func holidays(in year: Int) -> [TradingDate: String] {
        var days: [TradingDate: String] = [:]
        func fixed(_ month: Int, _ day: Int, _ name: String, observeSaturdayOnFriday: Bool = true) {
            let date = TradingDate(year: year, month: month, day: day)!
            switch date.weekday {
            case 6 where observeSaturdayOnFriday: days[date.advanced(by: -1)] = name
            case 6: break
            case 0: days[date.advanced(by: 1)] = name
            default: days[date] = name
            }
        }
        fixed(1, 1, "New Year's Day", observeSaturdayOnFriday: false)
        if year >= 1998 {
            days[MarketCalendar.nthWeekday(3, weekday: 1, month: 1, year: year)] = "Martin Luther King Jr. Day"
        }
        days[MarketCalendar.nthWeekday(3, weekday: 1, month: 2, year: year)] = "Washington's Birthday"
        days[MarketCalendar.easterSunday(year).advanced(by: -2)] = "Good Friday"
        days[MarketCalendar.lastWeekday(1, month: 5, year: year)] = "Memorial Day"
        if year >= 2022 { fixed(6, 19, "Juneteenth National Independence Day") }
        fixed(7, 4, "Independence Day")
        days[MarketCalendar.nthWeekday(1, weekday: 1, month: 9, year: year)] = "Labor Day"
        days[MarketCalendar.nthWeekday(4, weekday: 4, month: 11, year: year)] = "Thanksgiving Day"
        fixed(12, 25, "Christmas Day")
        return days
    }

    // MARK: Date rules

    /// The nth (1-based) given weekday (0 = Sunday) of a month.
    static func nthWeekday(_ n: Int, weekday: Int, month: Int, year: Int) -> TradingDate {
        let first = TradingDate(year: year, month: month, day: 1)!
        let offset = (weekday - first.weekday + 7) % 7
        return first.advanced(by: offset + 7 * (n - 1))
    }

    /// The last given weekday (0 = Sunday) of a month.
    static func lastWeekday(_ weekday: Int, month: Int, year: Int) -> TradingDate {
        let last = TradingDate(year: year, month: month, day: TradingDate.daysInMonth(year: year, month: month))!
        return last.advanced(by: -((last.weekday - weekday + 7) % 7))
    }

    /// Gregorian Easter Sunday (the anonymous "Meeus/Jones/Butcher" algorithm).
    static func easterSunday(_ year: Int) -> TradingDate {
        let a = year % 19, b = year / 100, c = year % 100
        let d = b / 4, e = b % 4, f = (b + 8) / 25, g = (b - f + 1) / 3
        let h = (19 * a + b - d - g + 15) % 30
        let i = c / 4, k = c % 4
        let l = (32 + 2 * e + 2 * i - h - k) % 7
        let m = (a + 11 * h + 22 * l) / 451
        let month = (h + l - 7 * m + 114) / 31
        let day = (h + l - 7 * m + 114) % 31 + 1
        return TradingDate(year: year, month: month, day: day)!
    }
}
