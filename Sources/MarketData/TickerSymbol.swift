import BacktestCore

/// Validation of ticker symbols before they reach a data source.
///
/// A symbol is 1 to 21 characters of upper-case letters, digits, `.`, `-` and `/`, starting with
/// a letter or digit. That admits share classes as Alpaca writes them (`BRK.B`), the dash form
/// some vendors use (`BRK-B`) and slash pairs, and rejects everything that could change the
/// meaning of a URL or a file path (spaces, `:`, `,`, `?`, `&`, `%`, a leading `.`).
/// Lower case is accepted and upper-cased, as every US equity symbol is upper case.
///
/// Validating up front matters because one malformed symbol fails Alpaca's whole multi-symbol
/// request; rejecting it here names the culprit and makes no request.
package enum TickerSymbol {
    package static let maxLength = 21

    /// The canonical (upper-case) form of `symbol`, or INVALID_ARGUMENT naming it.
    package static func normalized(_ symbol: String, field: String = "symbols") throws(BacktestError) -> String {
        let upper = symbol.uppercased()
        guard !upper.isEmpty else {
            throw .invalidArgument("ticker symbol is empty", field: field)
        }
        guard upper.utf8.count <= maxLength else {
            throw .invalidArgument("invalid ticker '\(symbol)': longer than \(maxLength) characters", field: field)
        }
        var isFirst = true
        for byte in upper.utf8 {
            let isAlphanumeric = (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
            let isPunctuation = byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "/")
            guard isAlphanumeric || (isPunctuation && !isFirst) else {
                throw .invalidArgument(
                    "invalid ticker '\(symbol)': use letters, digits, '.', '-' or '/' (e.g. AAPL, BRK.B)",
                    field: field)
            }
            isFirst = false
        }
        return upper
    }

    /// Validates every symbol of a query (already upper-cased by `BarQuery`).
    package static func validate(_ symbols: [String]) throws(BacktestError) {
        for symbol in symbols { _ = try normalized(symbol) }
    }
}
