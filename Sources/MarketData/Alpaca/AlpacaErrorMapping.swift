import BacktestCore
import Foundation

/// What to do about a response that is not 200.
struct AlpacaFailure: Sendable {
    var error: BacktestError
    /// 429, 5xx, timeouts, broken connections: another attempt may succeed.
    var isRetryable: Bool
    /// `X-RateLimit-Reset` of a 429: the Unix second the quota refills.
    var rateLimitResetAt: Double?

    /// Maps an HTTP error to our status codes with Alpaca's message, which is JSON
    /// `{"code": 40010000, "message": "…"}` where present but may lack `code` or not be JSON.
    static func from(_ response: HTTPResponse) -> AlpacaFailure {
        let message = vendorMessage(response.body)
        let status = response.status
        switch status {
        case 400, 422:
            if let symbol = invalidSymbol(in: message) {
                return AlpacaFailure(
                    error: .invalidArgument("invalid ticker '\(symbol)': Alpaca does not accept it (\(message))", field: "symbols"),
                    isRetryable: false)
            }
            return AlpacaFailure(
                error: .invalidArgument("Alpaca rejected the bars request (HTTP \(status)): \(message)"), isRetryable: false)
        case 401:
            return AlpacaFailure(
                error: BacktestError(.unauthenticated,
                    "Alpaca rejected the API keys (HTTP 401: \(message)); check APCA_API_KEY_ID and APCA_API_SECRET_KEY"),
                isRetryable: false)
        case 403:
            if message.lowercased().contains("subscription does not permit") {
                return AlpacaFailure(
                    error: BacktestError(.permissionDenied,
                        "the Alpaca subscription does not permit this data (HTTP 403: \(message)); recent SIP data needs a paid plan: set APCA_API_FEED=iex or query older dates"),
                    isRetryable: false)
            }
            return AlpacaFailure(
                error: BacktestError(.permissionDenied, "Alpaca refused the request (HTTP 403: \(message)); check the account's market-data permissions"),
                isRetryable: false)
        case 429:
            let reset = response.header("X-RateLimit-Reset").flatMap { Double($0.trimmingCharacters(in: .whitespaces)) }
            return AlpacaFailure(
                error: BacktestError(.unavailable, "Alpaca rate limit exceeded (HTTP 429: \(message))"),
                isRetryable: true, rateLimitResetAt: reset)
        case 500...599:
            return AlpacaFailure(
                error: BacktestError(.unavailable, "Alpaca server error (HTTP \(status): \(message))"), isRetryable: true)
        default:
            return AlpacaFailure(
                error: BacktestError(.unavailable, "unexpected answer from Alpaca (HTTP \(status): \(message)); check APCA_API_DATA_URL"),
                isRetryable: false)
        }
    }

    static func from(_ transportError: HTTPTransportError) -> AlpacaFailure {
        AlpacaFailure(
            error: BacktestError(.unavailable, "Alpaca could not be reached: \(transportError.message)"),
            isRetryable: transportError.kind != .permanent)
    }

    /// `message` of a JSON error body, else the body itself, trimmed to one short line.
    static func vendorMessage(_ body: [UInt8]) -> String {
        if let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
           let message = object["message"] as? String, !message.isEmpty {
            return message
        }
        let text = String(decoding: body.prefix(300), as: UTF8.self)
            .split(whereSeparator: \.isWhitespace).joined(separator: " ")
        return text.isEmpty ? "no message" : text
    }

    /// "invalid symbol: TAOP:NASDAQ" → "TAOP:NASDAQ".
    static func invalidSymbol(in message: String) -> String? {
        guard let range = message.range(of: "invalid symbol", options: .caseInsensitive) else { return nil }
        var rest = message[range.upperBound...]
        if rest.first == "s" { rest = rest.dropFirst() }  // "invalid symbols: …"
        rest = rest.drop { $0 == ":" || $0 == " " }
        let symbol = rest.prefix { !$0.isWhitespace && $0 != "," && $0 != "\"" }
        return symbol.isEmpty ? nil : String(symbol)
    }
}
