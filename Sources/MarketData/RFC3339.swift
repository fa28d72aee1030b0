import BacktestCore

/// RFC 3339 timestamps as Alpaca writes and reads them, on top of `NewYorkTime`.
package enum RFC3339 {
    /// `date` at a New York wall-clock time with its offset, e.g. "2024-01-03T00:00:00-05:00".
    package static func newYork(_ date: TradingDate, hour: Int, minute: Int, second: Int) -> String {
        let instant = NewYorkTime.unixSeconds(date: date, hour: hour, minute: minute, second: second)
        let offsetHours = -NewYorkTime.utcOffset(unixSeconds: instant) / 3600
        return "\(date.iso)T\(pad2(hour)):\(pad2(minute)):\(pad2(second))-\(pad2(offsetHours)):00"
    }

    /// A Unix instant in UTC, e.g. "2024-01-03T14:30:00Z".
    package static func utc(_ unixSeconds: Int64) -> String {
        let days = unixSeconds >= 0 ? unixSeconds / 86_400 : (unixSeconds - 86_399) / 86_400
        let second = Int(unixSeconds - days * 86_400)
        let date = TradingDate(daysSinceEpoch: Int32(days))
        return "\(date.iso)T\(pad2(second / 3600)):\(pad2(second / 60 % 60)):\(pad2(second % 60))Z"
    }

    /// Parses "2022-03-09T05:00:00Z", "…T05:00:00.123456789Z" (up to 9 fractional digits) or
    /// "…T00:00:00-05:00" to whole Unix seconds (fractions truncated: bars start on whole
    /// seconds). Nil for anything else.
    package static func parse(_ text: some StringProtocol) -> Int64? {
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
