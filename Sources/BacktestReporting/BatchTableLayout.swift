import BacktestCore

/// Column layout shared by the partial and the final batch table, so rows do not jump when the
/// table turns final.
package struct BatchTableLayout: Sendable {
    package static let defaultColumns: [BatchMetric] = [
        .totalReturn, .cagr, .sharpe, .sortino, .maxDrawdown, .volatility, .tradeCount, .finalEquity,
    ]
    /// Longer labels are cut with "…" so one long --vary value does not push the numbers off screen.
    package static let maxLabelWidth = 44

    package var rows: [BatchRow]
    package var columns: [BatchMetric]
    /// Marked with "▼" in the header (the sort column of a final table).
    package var sortedBy: BatchMetric?
    /// Whether the batch ended (cancelled, failed): its unfinished rows say "not run", not
    /// "Running..." (a tester's batch that never reached the server listed every row as running).
    package var ended: Bool

    package init(rows: [BatchRow], columns: [BatchMetric], sortedBy: BatchMetric? = nil, ended: Bool = false) {
        self.rows = rows
        self.columns = columns
        self.ended = ended
        self.sortedBy = sortedBy
    }

    package func lines() -> [String] {
        let indexWidth = max(2, String(max(0, rows.count - 1)).count + 1)
        let labelWidth = min(Self.maxLabelWidth, max("variant".count, rows.map(\.label.count).max() ?? 0))
        let widths = columns.map { column in
            max(title(column).count, column.minimumWidth, rows.compactMap(\.summary).map { column.text($0).count }.max() ?? 0)
        }
        func line(_ index: String, _ label: String, _ cells: [String]) -> String {
            var text = Format.padLeft(index, indexWidth) + "  " + Format.pad(Self.cut(label, labelWidth), labelWidth)
            for (cell, width) in zip(cells, widths) { text += "  " + Format.padLeft(cell, width) }
            return text
        }
        var lines = [line("#", "variant", columns.map(title))]
        lines.append(String(repeating: "─", count: lines[0].count))
        for row in rows {
            switch row.state {
            case .running:
                lines.append(Self.trimmed(line("\(row.index)", row.label, []) + (ended ? "  not run" : "  Running...")))
            case .failed(let error):
                lines.append(Self.trimmed(line("\(row.index)", row.label, []) + "  error: " + Self.describe(error)))
            case .done(let summary):
                lines.append(line("\(row.index)", row.label, columns.map { $0.text(summary) }))
            }
        }
        return lines
    }

    private func title(_ column: BatchMetric) -> String {
        column == sortedBy ? column.title + " ▼" : column.title
    }

    /// "INVALID_ARGUMENT: weight must be in (0, 1] (field strategy.positions[0].weight)".
    package static func describe(_ error: BacktestError) -> String {
        "\(error.code): \(error.message)" + (error.field.isEmpty ? "" : " (field \(error.field))")
    }

    static func cut(_ text: String, _ width: Int) -> String {
        text.count <= width ? text : String(text.prefix(width - 1)) + "…"
    }

    private static func trimmed(_ text: String) -> String {
        var text = text
        while text.last == " " { text.removeLast() }
        return text
    }
}
