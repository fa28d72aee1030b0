/// A ticker symbol, checked against the one syntax every part of the service accepts: the
/// engine's validation, every market-data source (Alpaca, local files, demo) and the cache keys.
///
/// **Syntax** (`Ticker.syntax`): 1 to 10 characters; upper-case ASCII letters `A`-`Z` and digits
/// `0`-`9`, starting with a letter; at most one `.` separating a share class, with at least one
/// letter or digit on each side. `AAPL`, `SPY`, `BRK.B` and `BF.B` are tickers.
///
/// Not accepted, on purpose:
/// - lower case (`aapl`): a request names what it trades exactly; the message suggests `AAPL`.
/// - `/` and `-` (`BRK/B`, `BRK-B`): other vendors' spellings of a share class; `/` is also a
///   path separator. Alpaca and this service write `BRK.B`.
/// - spaces, control characters (NUL included), any other punctuation and non-ASCII letters,
///   which could change the meaning of a URL, a file path or a cache key.
///
/// Two conveniences upper-case before the check, so lower case never reaches it from them: the
/// CLI's JSON strategy files (BacktestModel) and `BarQuery` (MarketData). Requests on the wire
/// are checked as sent.
///
/// A ticker is therefore always safe as a file name (the files source reads `<ticker>.csv`), in
/// a URL query and in a cache key, without escaping.
public struct Ticker: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The symbol, valid by construction.
    public let symbol: String

    /// Longest symbol accepted.
    public static let maxLength = 10

    /// The syntax in words, as error messages state it.
    public static let syntax =
        "1-\(maxLength) characters: upper-case letters A-Z and digits 0-9, starting with a letter, with at most one '.' before a share class (e.g. AAPL, BRK.B)"

    /// The ticker `text` spells, or nil when it does not follow the syntax.
    public init?(_ text: String) {
        guard Self.isValid(text) else { return nil }
        symbol = text
    }

    /// The ticker `text` spells.
    /// - Throws: INVALID_ARGUMENT on `field` that states the syntax and shows at most a short,
    ///   escaped prefix of `text` (never the whole input, never raw control characters). `field`
    ///   is evaluated only then (pass `path.child("ticker").description`: no text is built for a
    ///   valid ticker).
    public init(validating text: String, field: @autoclosure () -> String) throws(BacktestError) {
        guard let ticker = Ticker(text) else { throw Self.error(text, field: field()) }
        self = ticker
    }

    /// Validates `text` without keeping the value; `field` is evaluated only for the error.
    public static func validate(_ text: String, field: @autoclosure () -> String) throws(BacktestError) {
        guard isValid(text) else { throw error(text, field: field()) }
    }

    public var description: String { symbol }

    public static func < (lhs: Ticker, rhs: Ticker) -> Bool { lhs.symbol < rhs.symbol }

    /// The check itself, on UTF-8 bytes: any non-ASCII byte fails.
    public static func isValid(_ text: String) -> Bool {
        let bytes = text.utf8
        guard (1...maxLength).contains(bytes.count), let first = bytes.first, isLetter(first) else { return false }
        var dots = 0
        var previous: UInt8 = 0
        for byte in bytes {
            if byte == UInt8(ascii: ".") {
                dots += 1
                guard dots == 1, previous != UInt8(ascii: ".") else { return false }
            } else if !isLetter(byte) && !(byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) {
                return false
            }
            previous = byte
        }
        return previous != UInt8(ascii: ".")
    }

    private static func isLetter(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") }

    private static func error(_ text: String, field: String) -> BacktestError {
        let shown = text.isEmpty ? "an empty string" : quoted(text)
        var message = "\(shown) is not a ticker symbol; a ticker is \(syntax)"
        if text != text.uppercased(), let upper = Ticker(text.uppercased()) {
            message += "; did you mean \(upper.symbol)?"
        }
        return .invalidArgument(message, field: field)
    }

    /// At most 16 characters of `text`, quoted, with control and non-ASCII characters escaped
    /// (`"AAPL\u{0}../../x"` shows as `'AAPL\u{0}../../x'`).
    static func quoted(_ text: String) -> String { quotedInput(text) }
}
