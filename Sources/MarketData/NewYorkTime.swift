import BacktestCore

/// Wall-clock arithmetic in America/New_York, where US equities trade and where Alpaca anchors
/// daily bars ("midnight in the market's time zone", written in UTC).
///
/// The US Eastern rules are computed rather than looked up so the conversion is exact and fast
/// on every platform, with or without tzdata: EST is UTC-5, EDT is UTC-4, and daylight time runs
///
/// - since 2007: second Sunday of March 02:00 EST to first Sunday of November 02:00 EDT;
/// - 1987-2006: first Sunday of April to last Sunday of October;
/// - 1976-1986: last Sunday of April to last Sunday of October.
///
/// (Earlier years use the 1976 rule; no data we handle is that old.) The tests check these
/// rules against the system's tz database hour by hour around every transition.
public enum NewYorkTime {
    static let est = -5 * 3600
    static let edt = -4 * 3600

    /// Offset from UTC in seconds (-18000 or -14400) at the instant `utcSeconds` after 1970.
    public static func utcOffset(atUTC utcSeconds: Int64) -> Int {
        let utcDay = TradingDate(daysSinceEpoch: Int32(floorDiv(utcSeconds, 86_400)))
        let (start, end) = daylightTimeBounds(year: utcDay.year)
        return utcSeconds >= start && utcSeconds < end ? edt : est
    }

    /// The New York calendar date at the instant `utcSeconds`.
    public static func date(atUTC utcSeconds: Int64) -> TradingDate {
        let local = utcSeconds + Int64(utcOffset(atUTC: utcSeconds))
        return TradingDate(daysSinceEpoch: Int32(floorDiv(local, 86_400)))
    }

    /// The UTC instant of `date` at `secondOfDay` New York wall-clock time. Times inside the
    /// spring-forward gap or the autumn repeat (01:00-03:00) resolve to the standard-time
    /// reading; midnight and 23:59:59, which we use, are never in them.
    public static func utcSeconds(of date: TradingDate, secondOfDay: Int) -> Int64 {
        let local = Int64(date.daysSinceEpoch) * 86_400 + Int64(secondOfDay)
        let asDaylight = local - Int64(edt)
        if utcOffset(atUTC: asDaylight) == edt { return asDaylight }
        return local - Int64(est)
    }

    /// RFC 3339 text of `date` at `secondOfDay` in New York with its offset, e.g.
    /// "2024-01-03T00:00:00-05:00".
    public static func rfc3339(_ date: TradingDate, secondOfDay: Int) -> String {
        let utc = utcSeconds(of: date, secondOfDay: secondOfDay)
        let offset = utcOffset(atUTC: utc)
        let time = "\(pad2(secondOfDay / 3600)):\(pad2(secondOfDay / 60 % 60)):\(pad2(secondOfDay % 60))"
        return "\(date.iso)T\(time)-\(pad2(-offset / 3600)):00"
    }

    /// RFC 3339 text of a UTC instant, e.g. "2024-01-03T14:30:00Z".
    public static func rfc3339UTC(_ utcSeconds: Int64) -> String {
        let day = TradingDate(daysSinceEpoch: Int32(floorDiv(utcSeconds, 86_400)))
        let second = Int(utcSeconds - Int64(day.daysSinceEpoch) * 86_400)
        return "\(day.iso)T\(pad2(second / 3600)):\(pad2(second / 60 % 60)):\(pad2(second % 60))Z"
    }

    /// Parses an RFC 3339 timestamp ("2022-03-09T05:00:00Z", "…T05:00:00.123456789Z",
    /// "…T00:00:00-05:00") to whole seconds since 1970 in UTC. Fractions are truncated (bars are
    /// stamped on whole seconds). Nil for anything else.
    public static func parseRFC3339(_ text: some StringProtocol) -> Int64? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 20, let date = TradingDate(iso: String(decoding: bytes[0..<10], as: UTF8.self)),
              bytes[10] == UInt8(ascii: "T") || bytes[10] == UInt8(ascii: "t"),
              bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"),
              let hour = number(bytes[11..<13]), let minute = number(bytes[14..<16]),
              let second = number(bytes[17..<19]), hour < 24, minute < 60, second <= 60
        else { return nil }
        var index = 19
        if bytes[index] == UInt8(ascii: ".") {
            index += 1
            let fractionStart = index
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                index += 1
            }
            guard index > fractionStart, index - fractionStart <= 9 else { return nil }
        }
        guard index < bytes.count else { return nil }
        var offset = 0
        switch bytes[index] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            guard index + 1 == bytes.count else { return nil }
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            guard index + 6 == bytes.count, bytes[index + 3] == UInt8(ascii: ":"),
                  let hours = number(bytes[(index + 1)..<(index + 3)]),
                  let minutes = number(bytes[(index + 4)..<(index + 6)]), hours < 24, minutes < 60
            else { return nil }
            offset = (hours * 3600 + minutes * 60) * (bytes[index] == UInt8(ascii: "-") ? -1 : 1)
        default:
            return nil
        }
        return Int64(date.daysSinceEpoch) * 86_400 + Int64(hour * 3600 + minute * 60 + second) - Int64(offset)
    }

    // MARK: Rules

    /// UTC instants at which daylight time starts and ends in `year`.
    static func daylightTimeBounds(year: Int) -> (start: Int64, end: Int64) {
        let startDay: TradingDate
        let endDay: TradingDate
        if year >= 2007 {
            startDay = nthSunday(2, year: year, month: 3)
            endDay = nthSunday(1, year: year, month: 11)
        } else if year >= 1987 {
            startDay = nthSunday(1, year: year, month: 4)
            endDay = lastSunday(year: year, month: 10)
        } else {
            startDay = lastSunday(year: year, month: 4)
            endDay = lastSunday(year: year, month: 10)
        }
        // 02:00 EST = 07:00Z; 02:00 EDT = 06:00Z.
        return (Int64(startDay.daysSinceEpoch) * 86_400 + 7 * 3600, Int64(endDay.daysSinceEpoch) * 86_400 + 6 * 3600)
    }

    private static func nthSunday(_ n: Int, year: Int, month: Int) -> TradingDate {
        let first = TradingDate(year: year, month: month, day: 1)!
        return first.advanced(by: (7 - first.weekday) % 7 + 7 * (n - 1))
    }

    private static func lastSunday(year: Int, month: Int) -> TradingDate {
        let last = TradingDate(year: year, month: month, day: TradingDate.daysInMonth(year: year, month: month))!
        return last.advanced(by: -last.weekday)
    }

    private static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        a >= 0 ? a / b : -((-a + b - 1) / b)
    }

    private static func number(_ bytes: ArraySlice<UInt8>) -> Int? {
        var value = 0
        for byte in bytes {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return value
    }

    private static func pad2(_ value: Int) -> String {
        value < 10 ? "0\(value)" : "\(value)"
    }
}
