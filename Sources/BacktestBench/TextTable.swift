import Foundation

/// A Markdown table with padded columns, readable in a terminal and pasteable into README.md.
package struct TextTable: Sendable, Hashable {
    package var headers: [String]
    package var rows: [[String]]

    package init(headers: [String], rows: [[String]] = []) {
        self.headers = headers
        self.rows = rows
    }

    package mutating func append(_ row: [String]) {
        rows.append(row)
    }

    /// Short rows are padded with empty cells; `|` inside a cell is escaped.
    package func rendered() -> String {
        let columns = max(headers.count, rows.map(\.count).max() ?? 0)
        func cells(_ row: [String]) -> [String] {
            (row + Array(repeating: "", count: columns - row.count)).map { $0.replacingOccurrences(of: "|", with: "\\|") }
        }
        let all = [cells(headers)] + rows.map(cells)
        let widths = (0..<columns).map { column in all.map { $0[column].count }.max() ?? 0 }
        func line(_ row: [String]) -> String {
            "| " + zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: " | ") + " |"
        }
        var lines = [line(all[0])]
        lines.append("|" + widths.map { String(repeating: "-", count: $0 + 2) }.joined(separator: "|") + "|")
        lines += all.dropFirst().map(line)
        return lines.joined(separator: "\n")
    }
}

