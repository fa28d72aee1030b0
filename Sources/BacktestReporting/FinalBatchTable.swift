import BacktestCore
import BacktestModel
import Foundation

/// The table of a batch the server reported final: every row finished, sorted by a metric.
///
/// Only `BatchTable.finalized(sortBy:)` makes one (the initializer is private to this file), so
/// holding a `FinalBatchTable` proves the batch finished: `csv()` and the sorted view cannot be
/// produced from partial results.
package struct FinalBatchTable: Sendable {
    package let batchID: String
    /// Best first by `sortedBy`; failed variants last, in request order.
    package let rows: [BatchRow]
    package let sortedBy: BatchMetric
    package let stats: RunStatistics?

    fileprivate init(from table: BatchTable, sortedBy metric: BatchMetric) {
        batchID = table.batchID
        stats = table.stats
        sortedBy = metric
        rows = table.rows.sorted { a, b in
            Self.precedes((a.index, a.summary.map(metric.value)), (b.index, b.summary.map(metric.value)), by: metric)
        }
    }

    /// The table's order: whether row `a` comes before row `b` when sorted by `metric`, given
    /// each row's variant index and its metric value (nil for a failed variant). Best first; an
    /// undefined (NaN) value after every number; failed variants last; ties by index.
    package static func precedes(_ a: (index: Int, value: Double?), _ b: (index: Int, value: Double?), by metric: BatchMetric) -> Bool {
        switch (a.value, b.value) {
        case (let vx?, let vy?):
            // NaN (undefined metric) sorts after every number, before errors.
            if vx.isNaN != vy.isNaN { return vy.isNaN }
            if vx != vy, !vx.isNaN { return metric.higherIsBetter ? vx > vy : vx < vy }
            return a.index < b.index
        case (.some, nil): return true
        case (nil, .some): return false
        case (nil, nil): return a.index < b.index
        }
    }

    package var failedCount: Int { rows.count(where: { $0.summary == nil }) }

    package func render(columns: [BatchMetric] = BatchTableLayout.defaultColumns) -> [String] {
        var lines = ["Final Results"]
        var subtitle = "\(rows.count) variant\(rows.count == 1 ? "" : "s"), sorted by \(sortedBy.rawValue) (best first)"
        if failedCount > 0 { subtitle += "; \(failedCount) failed" }
        if let stats {
            subtitle += String(format: "; %.0f ms, %.1f variants/s", stats.totalMs, stats.variantsPerSecond)
        }
        lines.append(subtitle)
        let shown = columns.contains(sortedBy) ? columns : [sortedBy] + columns
        lines += BatchTableLayout(rows: rows, columns: shown, sortedBy: sortedBy).lines()
        return lines
    }

    /// RFC 4180 CSV, one row per variant in the table's order. Numbers are written with full
    /// precision (they round-trip); an undefined or infinite metric is an empty field.
    package func csv() -> String {
        var lines = [Self.csvHeader]
        for (rank, row) in rows.enumerated() { lines.append(Self.csvLine(rank: rank + 1, row)) }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    /// The CSV's header line, without the line break.
    package static var csvHeader: String {
        var header = ["rank", "index", "variant", "strategy_name", "status"]
        header += BatchMetric.allCases.map(\.rawValue)
        header += ["max_drawdown_duration", "order_count", "warnings", "error_code", "error_message", "error_field"]
        return header.map(Self.field).joined(separator: ",")
    }

    /// One CSV line (without the line break): `row` at `rank` (1 = best), as `csv()` writes it.
    package static func csvLine(rank: Int, _ row: BatchRow) -> String {
        let metrics = BatchMetric.allCases
        var cells = [String(rank), String(row.index), Self.text(row.label)]
        switch row.state {
        case .done(let summary):
            cells += [Self.text(summary.strategyName), "ok"]
            cells += metrics.map { metric in
                let value = metric.value(summary)
                return metric == .tradeCount ? String(summary.metrics.tradeCount) : (value.isFinite ? "\(value)" : "")
            }
            cells += [String(summary.metrics.maxDrawdownDuration), String(summary.orderCount),
                      Self.text(summary.warnings.joined(separator: "; ")), "", "", ""]
        case .failed(let error):
            cells += ["", "error"] + metrics.map { _ in "" } + ["", "", "", "\(error.code)", Self.text(error.message), Self.text(error.field)]
        case .running:
            // Unreachable in a final table; written honestly rather than trapping.
            cells += ["", "running"] + metrics.map { _ in "" } + ["", "", "", "", "", ""]
        }
        return cells.map(Self.field).joined(separator: ",")
    }

    /// A cell of free text (labels, names, messages) that a spreadsheet would run as a formula
    /// when it starts with = + - @ (CSV injection) gets a leading apostrophe, OWASP's advice.
    /// Numbers are written by us and never pass through here, so "-0.12" stays a number.
    static func text(_ value: String) -> String {
        guard let first = value.first, "=+-@\t\r".contains(first) else { return value }
        return "'" + value
    }

    /// Quotes a field when it holds a comma, quote or line break; quotes inside are doubled.
    static func field(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

extension BatchTable {
    /// The final table sorted by `metric`, best first; nil while the batch is not final.
    package func finalized(sortBy metric: BatchMetric) -> FinalBatchTable? {
        guard isFinal else { return nil }
        return FinalBatchTable(from: self, sortedBy: metric)
    }
}
