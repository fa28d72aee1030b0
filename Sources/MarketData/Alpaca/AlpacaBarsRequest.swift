import BacktestCore

/// The URL of one page of `GET /v2/stocks/bars`, as Alpaca's reference describes it.
struct AlpacaBarsRequest: Sendable {
    var baseURL: String
    var symbols: [String]
    /// Inclusive RFC 3339 bounds.
    var start: String
    var end: String
    var adjustment: PriceAdjustment
    var feed: String
    var limit: Int

    /// Every parameter stays the same from page to page; only `page_token` changes, and it is
    /// left out (never sent empty or as "null") on the first page.
    func url(pageToken: String?) -> String {
        var items: [(String, String)] = [
            ("symbols", symbols.joined(separator: ",")),
            ("timeframe", "1Day"),
            ("start", start),
            ("end", end),
            ("adjustment", adjustment.rawValue),  // raw, split, all: Alpaca's own names
            ("feed", feed),
            ("sort", "asc"),
            ("limit", String(limit)),
        ]
        if let pageToken, !pageToken.isEmpty { items.append(("page_token", pageToken)) }
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        let query = items.map { "\($0)=\(Self.percentEncoded($1))" }.joined(separator: "&")
        return "\(base)/v2/stocks/bars?\(query)"
    }

    /// Percent-encodes everything but RFC 3986's unreserved characters, so `,` `:` `+` `/` `=`
    /// (page tokens are base64) arrive as data, not syntax.
    static func percentEncoded(_ text: String) -> String {
        var result = ""
        result.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
                 UInt8(ascii: "_"), UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".unicodeScalars)
                result.unicodeScalars.append("%")
                result.unicodeScalars.append(hex[Int(byte >> 4)])
                result.unicodeScalars.append(hex[Int(byte & 0xF)])
            }
        }
        return result
    }
}
