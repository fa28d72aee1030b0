import BacktestCore
import Foundation

/// `GET /v2/stocks/bars` as Alpaca documents it, served from per-ticker CSV files: the pure
/// request → response part of `FakeAlpacaServer` (no networking, no shared state).
///
/// Behaviour copied from Alpaca: bars keyed by symbol, sorted by symbol then time; `t` at
/// midnight New York written in UTC; `limit` (default 1000, max 10000) counts bars across all
/// symbols, so a symbol can be split across pages; `next_page_token` is opaque base64 or null;
/// unknown symbols are omitted; a malformed symbol fails the whole request with 400
/// `invalid symbol: X`; unknown parameters fail with 400. Adjustment (`raw`, `split`, `all`) is
/// applied over each file's whole history with `DailyBars.adjusted`.
///
/// Deliberately independent of the client's code: times are read with Foundation's ISO 8601
/// parser and stamped with Foundation's America/New_York time zone.
package struct FakeAlpacaBarsEndpoint: Sendable {
    package struct Response: Sendable {
        package var status: Int
        package var body: String
    }

    package var dataDirectory: URL

    package init(dataDirectory: URL) {
        self.dataDirectory = dataDirectory
    }

    static let allowedParameters: Set<String> = [
        "symbols", "timeframe", "start", "end", "limit", "adjustment", "feed", "page_token", "sort", "asof", "currency",
    ]

    package func respond(query: [(String, String)], bars: (String) -> DailyBars?) -> Response {
        var parameters: [String: String] = [:]
        for (name, value) in query {
            guard Self.allowedParameters.contains(name) else {
                return error(400, 40_010_000, "unexpected parameter(s): \(name)")
            }
            parameters[name] = value
        }
        guard let symbolList = parameters["symbols"], !symbolList.isEmpty else {
            return error(400, 40_010_000, "symbols is required")
        }
        let symbols = Array(Set(symbolList.split(separator: ",", omittingEmptySubsequences: false).map { String($0).uppercased() })).sorted()
        for symbol in symbols where symbol.isEmpty || !symbol.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == ".") }) {
            return error(400, 40_010_001, "invalid symbol: \(symbol)")
        }
        guard ["1Day", "1D"].contains(parameters["timeframe"] ?? "") else {
            return error(422, 42_210_000, "invalid timeframe")
        }
        guard let start = parameters["start"].flatMap(Self.parseTime) else { return error(422, 42_210_000, "invalid start") }
        let end = parameters["end"].map(Self.parseTime) ?? Date().timeIntervalSince1970
        guard let end else { return error(422, 42_210_000, "invalid end") }
        guard let limit = Int(parameters["limit"] ?? "1000"), (1...10_000).contains(limit) else {
            return error(422, 42_210_000, "invalid limit: must be between 1 and 10000")
        }
        guard let adjustment = PriceAdjustment(rawValue: parameters["adjustment"] ?? "raw") else {
            return error(400, 40_010_000, "invalid adjustment")
        }
        var after: (symbol: String, time: Int)?
        if let token = parameters["page_token"] {
            guard let decoded = Data(base64Encoded: token).map({ String(decoding: $0, as: UTF8.self) }),
                  case let fields = decoded.split(separator: "|"), fields.count == 3, let time = Int(fields[2])
            else { return error(400, 40_010_000, "invalid page_token") }
            after = (String(fields[0]), time)
        }

        // Rows in Alpaca's order: by symbol, then by time.
        var page: [(symbol: String, json: String)] = []
        var lastRow: (symbol: String, time: Int)?
        var hasMore = false
        scan: for symbol in symbols {
            if let after, symbol < after.symbol { continue }
            guard let series = bars(symbol)?.adjusted(adjustment) else { continue }
            for i in 0..<series.count {
                let time = Self.newYorkMidnight(series.dates[i])
                guard Double(time) >= start, Double(time) <= end else { continue }
                if let after, symbol == after.symbol, time <= after.time { continue }
                if page.count == limit {
                    hasMore = true
                    break scan
                }
                page.append((symbol, Self.barJSON(series, i, time: time)))
                lastRow = (symbol, time)
            }
        }
        var grouped: [String] = []
        var index = 0
        while index < page.count {
            let symbol = page[index].symbol
            var rows: [String] = []
            while index < page.count, page[index].symbol == symbol {
                rows.append(page[index].json)
                index += 1
            }
            grouped.append("\"\(symbol)\":[\(rows.joined(separator: ","))]")
        }
        var token = "null"
        if hasMore, let lastRow {
            token = "\"\(Data("\(lastRow.symbol)|D|\(lastRow.time)".utf8).base64EncodedString())\""
        }
        return Response(status: 200, body: "{\"bars\":{\(grouped.joined(separator: ","))},\"next_page_token\":\(token)}")
    }

    func error(_ status: Int, _ code: Int, _ message: String) -> Response {
        Response(status: status, body: "{\"code\":\(code),\"message\":\"\(message)\"}")
    }

    static func barJSON(_ bars: DailyBars, _ i: Int, time: Int) -> String {
        let volume = bars.volume[i]
        let v = volume == volume.rounded() && abs(volume) < 9e15 ? String(Int64(volume)) : "\(volume)"
        let typical = (bars.high[i] + bars.low[i] + bars.close[i]) / 3
        return "{\"t\":\"\(utcText(time))\",\"o\":\(bars.open[i]),\"h\":\(bars.high[i]),\"l\":\(bars.low[i]),"
            + "\"c\":\(bars.close[i]),\"v\":\(v),\"n\":\(Int(volume / 100) + 1),\"vw\":\(typical)}"
    }

    // MARK: Time, via Foundation's tz database

    static let newYork = TimeZone(identifier: "America/New_York")!

    /// Unix seconds of midnight in New York on `date`. 05:00Z is always before that day's
    /// 02:00-local DST switch, so its offset is midnight's offset.
    static func newYorkMidnight(_ date: TradingDate) -> Int {
        let utcMidnight = Int(date.daysSinceEpoch) * 86_400
        let offset = newYork.secondsFromGMT(for: Date(timeIntervalSince1970: Double(utcMidnight + 5 * 3600)))
        return utcMidnight - offset
    }

    static func utcText(_ time: Int) -> String {
        let day = time >= 0 ? time / 86_400 : (time - 86_399) / 86_400
        let second = time - day * 86_400
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(TradingDate(daysSinceEpoch: Int32(day)).iso)T\(two(second / 3600)):\(two(second / 60 % 60)):\(two(second % 60))Z"
    }

    /// RFC 3339 with or without fractional seconds, or YYYY-MM-DD (midnight UTC), to Unix seconds.
    static func parseTime(_ text: String) -> Double? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        if let date = formatter.date(from: text) { return date.timeIntervalSince1970 }
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date.timeIntervalSince1970 }
        formatter.formatOptions = [.withFullDate]
        return formatter.date(from: text)?.timeIntervalSince1970
    }
}
