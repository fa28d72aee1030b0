import BacktestCore
import BacktestModel
import Foundation

/// What `backtest indicators` prints for a GetIndicators answer: JSON, CSV or a text table.
///
/// JSON (`--json`) is `{"ticker", "adjustment", "dates": ["YYYY-MM-DD", ...], "close": [...],
/// "series": {KEY: [value or null]}}`, the shape of shared/reference/indicators/TICKER.json:
/// keys are canonical (`IndicatorSpec.canonicalKey`) in the order asked, `null` where the
/// indicator has no value (warm-up), numbers with the shortest digits that read back to the same
/// double.
package struct IndicatorDocument: Sendable {
    package var result: IndicatorsResult

    package init(_ result: IndicatorsResult) {
        self.result = result
    }

    /// The JSON document, one line, keys in the documented order (then `source`, and `warnings`
    /// when there are any).
    package func json() -> Data {
        var out = "{\"ticker\":" + Self.quoted(result.ticker) + ",\"adjustment\":" + Self.quoted(result.adjustment.rawValue)
        out += ",\"dates\":[" + result.dates.map { "\"\($0.iso)\"" }.joined(separator: ",") + "]"
        out += ",\"close\":[" + result.close.map(Self.jsonNumber).joined(separator: ",") + "]"
        out += ",\"series\":{" + result.series.map { series in
            Self.quoted(series.key) + ":[" + series.values.map(Self.jsonNumber).joined(separator: ",") + "]"
        }.joined(separator: ",") + "}"
        out += ",\"source\":" + Self.quoted(result.dataSource)
        if !result.warnings.isEmpty {
            out += ",\"warnings\":[" + result.warnings.map { Self.quoted($0.message) }.joined(separator: ",") + "]"
        }
        return Data((out + "}").utf8)
    }

    /// A double with the shortest digits that read back to it (Swift's `description`, valid JSON
    /// for finite values); `null` for NaN and the infinities.
    private static func jsonNumber(_ value: Double) -> String { value.isFinite ? "\(value)" : "null" }

    /// A JSON string literal.
    private static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// RFC 4180 CSV: a header `date,close,KEY...` (keys holding a comma quoted), then one row per
    /// date; an empty cell where the indicator has no value.
    package func csv() -> String {
        var lines = [(["date", "close"] + result.series.map(\.key)).map(Self.csvField).joined(separator: ",")]
        for (i, date) in result.dates.enumerated() {
            var row = [date.iso, Self.number(result.close[i])]
            for series in result.series { row.append(Self.number(series.values[i])) }
            lines.append(row.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A text table of the last `rows` dates (4 decimals, "-" for no value), with a line saying
    /// how many dates the answer holds.
    package func table(rows: Int) -> String {
        let header = ["date", "close"] + result.series.map(\.key)
        let first = max(0, result.dates.count - max(0, rows))
        var body: [[String]] = []
        for i in first..<result.dates.count {
            var row = [result.dates[i].iso, Self.fixed(result.close[i])]
            for series in result.series { row.append(Self.fixed(series.values[i])) }
            body.append(row)
        }
        let widths = header.indices.map { column in ([header] + body).map { $0[column].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { column, cell in
                column == 0 ? cell.padding(toLength: widths[0], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[column] - cell.count) + cell
            }.joined(separator: "  ")
        }
        var text = "\(result.ticker) (\(result.adjustment.rawValue)-adjusted, \(result.dataSource)): "
        if let firstDate = result.dates.first, let lastDate = result.dates.last {
            text += "\(result.dates.count) dates \(firstDate)...\(lastDate)"
            if first > 0 { text += ", the last \(result.dates.count - first) shown (--rows, --csv or --json for all)" }
        } else {
            text += "no bars in the window"
        }
        text += "\n" + line(header) + "\n"
        for row in body { text += line(row) + "\n" }
        for warning in result.warnings { text += "warning: \(warning.message)\n" }
        return text
    }

    private static func number(_ value: Double) -> String { value.isNaN ? "" : "\(value)" }

    private static func fixed(_ value: Double) -> String { value.isNaN ? "-" : String(format: "%.4f", value) }

    private static func csvField(_ text: String) -> String {
        text.contains(",") || text.contains("\"") ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
    }
}

/// `--series` lists: "sma:50,rsi:14,macd:12,26,9:signal" is three keys. A comma separates keys,
/// except before a piece that starts like a number ("26", "9:signal", ".5"), which continues the
/// previous key's parameters; indicator types start with a letter, so this is unambiguous.
package enum IndicatorSeriesList {
    package static func split(_ arguments: [String]) -> [String] {
        var keys: [String] = []
        for argument in arguments {
            for piece in argument.split(separator: ",", omittingEmptySubsequences: false) {
                let text = piece.trimmingCharacters(in: .whitespaces)
                if let first = text.first, first.isNumber || first == "." || first == "-", let last = keys.last, !last.isEmpty {
                    keys[keys.count - 1] = last + "," + text
                } else {
                    keys.append(text)
                }
            }
        }
        return keys
    }
}
