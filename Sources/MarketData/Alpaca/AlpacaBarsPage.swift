import BacktestCore
import Foundation

/// One page of Alpaca's bars response:
///
///     {"bars": {"AAPL": [{"t": "2022-03-09T05:00:00Z", "o": …, "h": …, "l": …, "c": …,
///                         "v": …, "n": …, "vw": …}, …], …},
///      "next_page_token": "…" | null}
///
/// Parsed defensively: `bars` may be `{}`, `null` or absent, a symbol's list may be `null`, the
/// token may be absent. `n` and `vw` are not needed and not required.
struct AlpacaBarsPage: Sendable {
    struct Bar: Sendable {
        var date: TradingDate
        var open, high, low, close, volume: Double
    }

    var bars: [String: [Bar]]
    var nextPageToken: String?

    static func parse(_ body: [UInt8]) throws(BacktestError) -> AlpacaBarsPage {
        let decoded: Wire
        do {
            decoded = try JSONDecoder().decode(Wire.self, from: Data(body))
        } catch {
            let excerpt = String(decoding: body.prefix(120), as: UTF8.self)
            throw BacktestError(.unavailable, "Alpaca sent an unreadable bars response (\(error.shortDescription)): \(excerpt)", cause: error)
        }
        var bars: [String: [Bar]] = [:]
        for (symbol, list) in decoded.bars ?? [:] {
            guard let list else { continue }
            var converted: [Bar] = []
            converted.reserveCapacity(list.count)
            for bar in list {
                // Daily bars start at midnight New York time, written in UTC (04:00Z in EDT,
                // 05:00Z in EST): the trading date is the New York date of `t`.
                guard let instant = RFC3339.parse(bar.t) else {
                    throw BacktestError(.unavailable, "Alpaca sent a bar of \(symbol) with timestamp '\(bar.t)', not RFC 3339")
                }
                converted.append(Bar(
                    date: NewYorkTime.date(unixSeconds: instant),
                    open: bar.o, high: bar.h, low: bar.l, close: bar.c, volume: bar.v))
            }
            bars[symbol.uppercased(), default: []].append(contentsOf: converted)
        }
        let token = decoded.next_page_token.flatMap { $0.isEmpty ? nil : $0 }
        return AlpacaBarsPage(bars: bars, nextPageToken: token)
    }

    private struct Wire: Decodable {
        var bars: [String: [WireBar]?]?
        var next_page_token: String?
    }

    private struct WireBar: Decodable {
        var t: String
        var o, h, l, c, v: Double
    }
}

extension Error {
    /// A one-line reason, without Foundation's nested coding-path dumps.
    var shortDescription: String {
        switch self as any Error {
        case DecodingError.keyNotFound(let key, let context):
            return "missing '\(key.stringValue)' at \(context.codingPath.map(\.stringValue).joined(separator: "."))"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "wrong type at \(context.codingPath.map(\.stringValue).joined(separator: "."))"
        case DecodingError.dataCorrupted:
            return "not JSON"
        default:
            return "\(self)"
        }
    }
}
