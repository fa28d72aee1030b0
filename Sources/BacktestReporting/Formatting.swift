import Foundation

/// How numbers look in every text the CLI prints, so the run report, the batch table and the CSV
/// agree on what "12.34%" means.
package enum Format {
    /// "12.34%" for 0.1234; "-" for NaN (an undefined metric), "inf%" for infinities.
    package static func percent(_ value: Double) -> String {
        value.isFinite ? String(format: "%.2f%%", value * 100) : (value.isNaN ? "-" : (value > 0 ? "inf" : "-inf"))
    }

    /// Three decimals; "-" for NaN, "inf" for infinities (profit factor without a losing trade).
    package static func number(_ value: Double) -> String {
        value.isFinite ? String(format: "%.3f", value) : (value.isNaN ? "-" : (value > 0 ? "inf" : "-inf"))
    }

    /// "$123,456.78".
    package static func money(_ value: Double) -> String {
        guard value.isFinite else { return "-" }
        let cents = String(format: "%.2f", abs(value))
        let parts = cents.split(separator: ".")
        var whole = String(parts[0])
        var grouped = ""
        while whole.count > 3 {
            grouped = "," + whole.suffix(3) + grouped
            whole.removeLast(3)
        }
        return (value < 0 ? "-$" : "$") + whole + grouped + "." + parts[1]
    }

    /// A short axis label: "$98.5k", "$1.25M", "$950".
    package static func compactMoney(_ value: Double) -> String {
        let magnitude = abs(value)
        let sign = value < 0 ? "-" : ""
        switch magnitude {
        case 1e9...: return sign + "$" + String(format: "%.2fB", magnitude / 1e9)
        case 1e6...: return sign + "$" + String(format: "%.2fM", magnitude / 1e6)
        case 1e4...: return sign + "$" + String(format: "%.1fk", magnitude / 1e3)
        default: return sign + "$" + String(format: "%.0f", magnitude)
        }
    }

    /// Left-aligned in `width` columns (longer text is kept whole: a wide cell beats a cut-off number).
    package static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }

    /// Right-aligned in `width` columns.
    package static func padLeft(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
    }
}
