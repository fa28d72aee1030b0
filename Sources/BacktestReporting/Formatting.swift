import Foundation

/// How numbers look in every text the package prints for people (the CLI's run report, batch
/// table and CSV, and backtest-bench's reports): the one set of number formatters.
package enum Format {
    /// "12.34%" for 0.1234 (`decimals` digits after the point); "-" for NaN (an undefined
    /// metric), "inf"/"-inf" for infinities.
    package static func percent(_ value: Double, decimals: Int) -> String {
        value.isFinite ? String(format: "%.\(decimals)f%%", value * 100) : (value.isNaN ? "-" : (value > 0 ? "inf" : "-inf"))
    }

    /// "12.34%" for 0.1234: `percent(_:decimals:)` with two decimals.
    package static func percent(_ value: Double) -> String { percent(value, decimals: 2) }

    /// A duration given in milliseconds, with the precision that matters at its size:
    /// "1.25 s", "420 ms", "35.3 ms", "2.28 ms".
    package static func milliseconds(_ value: Double) -> String {
        if value >= 1000 { return String(format: "%.2f s", value / 1000) }
        if value >= 100 { return String(format: "%.0f ms", value) }
        if value >= 10 { return String(format: "%.1f ms", value) }
        return String(format: "%.2f ms", value)
    }

    /// A speed-up factor: "4.8x", "137x"; "-" when not finite.
    package static func ratio(_ value: Double) -> String {
        guard value.isFinite else { return "-" }
        return value < 10 ? String(format: "%.1fx", value) : String(format: "%.0fx", value)
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
