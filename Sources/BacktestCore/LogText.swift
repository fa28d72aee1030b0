/// A value for a log line that came from outside the server (a strategy name, a ticker, a batch
/// id, an error message that may echo one): escaped so it cannot forge or split log lines, and
/// bounded so it cannot flood the log.
///
/// Every log call that interpolates client data wraps the value: `logger.info("backtest
/// \(LogText(strategy.name))")`. The text is rendered as
/// - control characters escaped: newline as `\n`, carriage return as `\r`, tab as `\t`, other
///   C0/C1 controls, DEL, line/paragraph separators and bidirectional overrides as `\u{XXXX}`;
///   a backslash as `\\` (so an escape in the input cannot pass for one the server wrote);
/// - at most `limit` characters of the input (default 64), then `…(N bytes)` with the input's
///   full UTF-8 length, so a 3 MB name gives a line of about a hundred characters.
///
/// `LogText` is a `CustomStringConvertible`, so it also works as swift-log metadata
/// (`.stringConvertible(LogText(x))`) and inside other interpolations.
public struct LogText: Sendable, CustomStringConvertible {
    /// Characters of the input kept when none is given: enough for a name or ticker, short
    /// enough that a line stays one screen line.
    public static let defaultLimit = 64

    /// Characters kept of a message the server composed around client data (an error's or a
    /// warning's text): room for the sentence, not for a 4 MB ticker it echoes.
    public static let messageLimit = 400

    /// The escaped, bounded rendering.
    public let description: String

    /// Escapes `text` and keeps at most `limit` (>= 0) of its characters.
    public init(_ text: some StringProtocol, limit: Int = LogText.defaultLimit) {
        var rendered = ""
        var kept = 0
        var truncated = false
        for character in text {
            if kept == limit {
                truncated = true
                break
            }
            kept += 1
            for scalar in character.unicodeScalars { LogText.append(scalar, to: &rendered) }
        }
        if truncated { rendered += "…(\(text.utf8.count) bytes)" }
        description = rendered
    }

    /// Escapes `text` and keeps at most `limit` characters of it; the same as
    /// `LogText(text, limit:).description`.
    public static func escape(_ text: some StringProtocol, limit: Int = LogText.defaultLimit) -> String {
        LogText(text, limit: limit).description
    }

    private static func append(_ scalar: Unicode.Scalar, to rendered: inout String) {
        switch scalar {
        case "\n": rendered += "\\n"
        case "\r": rendered += "\\r"
        case "\t": rendered += "\\t"
        case "\\": rendered += "\\\\"
        default:
            if needsEscape(scalar) {
                rendered += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
            } else {
                rendered.unicodeScalars.append(scalar)
            }
        }
    }

    /// C0 and C1 controls, DEL, U+2028/U+2029 (line and paragraph separators) and the
    /// bidirectional embedding, override and isolate characters (U+202A...U+202E,
    /// U+2066...U+2069), which could reorder what a terminal shows.
    private static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069: true
        default: false
        }
    }
}
