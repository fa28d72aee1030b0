/// A calendar day with no time of day and no time zone: the unit of daily bars.
///
/// Stored as days since 1970-01-01 in the proleptic Gregorian calendar, so comparisons,
/// hashing and distances are integer operations. Conversions use Howard Hinnant's
/// `days_from_civil` / `civil_from_days` algorithms, exact for every date we handle.
public struct TradingDate: Hashable, Comparable, Strideable, Sendable {
    public let daysSinceEpoch: Int32

    public init(daysSinceEpoch: Int32) {
        self.daysSinceEpoch = daysSinceEpoch
    }

    /// Nil when the fields do not name a real day (month 13, February 30, ...).
    public init?(year: Int, month: Int, day: Int) {
        guard (1...12).contains(month), day >= 1,
              day <= TradingDate.daysInMonth(year: year, month: month)
        else { return nil }
        self.daysSinceEpoch = Int32(TradingDate.daysFromCivil(year: year, month: month, day: day))
    }

    /// Parses "YYYY-MM-DD". Nil for anything else, including impossible days.
    public init?(iso: some StringProtocol) {
        let bytes = Array(iso.utf8)
        guard bytes.count == 10, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
              let year = TradingDate.digits(bytes[0..<4]),
              let month = TradingDate.digits(bytes[5..<7]),
              let day = TradingDate.digits(bytes[8..<10])
        else { return nil }
        self.init(year: year, month: month, day: day)
    }

    /// Parses the packed wire form YYYYMMDD, e.g. 20050103.
    public init?(yyyymmdd: Int32) {
        let value = Int(yyyymmdd)
        self.init(year: value / 10_000, month: value / 100 % 100, day: value % 100)
    }

    public var year: Int { civil.year }
    public var month: Int { civil.month }
    public var day: Int { civil.day }

    /// The packed wire form, e.g. 20050103.
    public var yyyymmdd: Int32 {
        let (y, m, d) = civil
        return Int32(y * 10_000 + m * 100 + d)
    }

    /// "YYYY-MM-DD".
    public var iso: String {
        let (y, m, d) = civil
        func pad(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))"
    }

    /// Day of the week, 0 = Sunday ... 6 = Saturday (1970-01-01 was a Thursday).
    public var weekday: Int {
        let days = Int(daysSinceEpoch)
        return days >= -4 ? (days + 4) % 7 : (days + 5) % 7 + 6
    }

    public var isWeekend: Bool { weekday == 0 || weekday == 6 }

    public static func < (lhs: TradingDate, rhs: TradingDate) -> Bool {
        lhs.daysSinceEpoch < rhs.daysSinceEpoch
    }

    public func distance(to other: TradingDate) -> Int {
        Int(other.daysSinceEpoch) - Int(daysSinceEpoch)
    }

    public func advanced(by days: Int) -> TradingDate {
        TradingDate(daysSinceEpoch: daysSinceEpoch + Int32(days))
    }

    public static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: return isLeapYear(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    public static func isLeapYear(_ year: Int) -> Bool {
        (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
    }

    // MARK: Civil-date arithmetic

    private var civil: (year: Int, month: Int, day: Int) {
        let z = Int(daysSinceEpoch) + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    private static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    private static func digits(_ bytes: ArraySlice<UInt8>) -> Int? {
        var value = 0
        for byte in bytes {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return value
    }
}

extension TradingDate: CustomStringConvertible {
    public var description: String { iso }
}

extension TradingDate: Codable {
    /// Encoded as "YYYY-MM-DD", the form people write in strategy files.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let date = TradingDate(iso: text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "\(quotedInput(text, limit: 40)) is not a date of the form YYYY-MM-DD")
        }
        self = date
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(iso)
    }
}
