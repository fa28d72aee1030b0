import BacktestModel

/// A line chart drawn with Unicode braille characters: each character cell holds a 2×4 grid of
/// dots, so a `width`×`height` chart has `2·width`×`4·height` points of resolution.
///
/// Every plot line has the same width (`labelWidth + 2 + width` characters) whatever the data,
/// so the chart sits still in a terminal. The first series is drawn solid and on top; the others
/// dotted (every other dot column), so strategy and benchmark stay apart even without colors.
/// Colors are ANSI escapes, and only when `useColor` is set: the caller passes false when stdout
/// is not a terminal (or NO_COLOR is set), so files and pipes get plain text.
package struct TerminalChart: Sendable {
    package enum Color: String, Sendable {
        case cyan = "36", yellow = "33", magenta = "35", green = "32"
    }

    package struct Series: Sendable {
        package var name: String
        package var values: [Double]
        package var color: Color

        package init(name: String, values: [Double], color: Color) {
            self.name = name
            self.values = values
            self.color = color
        }
    }

    /// Plot columns (characters), at least 2.
    package var width: Int
    /// Plot rows (characters), at least 2.
    package var height: Int
    package var useColor: Bool
    /// Characters of the y-axis labels, left of the axis.
    package static let labelWidth = 9

    package init(width: Int = 64, height: Int = 14, useColor: Bool = false) {
        self.width = max(2, width)
        self.height = max(2, height)
        self.useColor = useColor
    }

    /// The chart of a result: its equity against the benchmark's buy-and-hold equity.
    package func render(_ result: BacktestResult) -> [String] {
        let strategy = Series(name: result.strategyName.isEmpty ? "strategy" : result.strategyName, values: result.equity, color: .cyan)
        let benchmark = Series(name: result.benchmarkTicker.isEmpty ? "benchmark" : result.benchmarkTicker, values: result.benchmark, color: .yellow)
        return render([strategy, benchmark], from: result.dates.first?.iso ?? "", to: result.dates.last?.iso ?? "")
    }

    /// Plot lines, then the x axis with `from` and `to` under its ends, then a legend.
    package func render(_ series: [Series], from: String = "", to: String = "") -> [String] {
        let finite = series.flatMap(\.values).filter(\.isFinite)
        guard let low = finite.min(), let high = finite.max() else { return ["(no data to chart)"] }
        // A flat line sits in the middle of a band instead of dividing by zero.
        let pad = high > low ? 0 : max(abs(high) * 0.01, 1)
        let range = (low: low - pad, high: high + pad)

        var cells = [[Cell]](repeating: [Cell](repeating: Cell(), count: width), count: height)
        // Back to front, so the first series (the strategy) wins the color of shared cells.
        for (order, line) in series.enumerated().reversed() {
            for dot in dots(of: line.values, range: range, dotted: order > 0) {
                cells[dot.row / 4][dot.column / 2].add(dot: dot, color: line.color)
            }
        }

        var lines: [String] = []
        for row in 0..<height {
            let label = yLabel(row: row, range: range).map(Format.compactMoney) ?? ""
            var line = Format.padLeft(label, Self.labelWidth) + (label.isEmpty ? " │" : " ┤")
            for cell in cells[row] { line += paint(cell.character, cell.color) }
            lines.append(line)
        }
        let gutter = String(repeating: " ", count: Self.labelWidth + 1)
        lines.append(gutter + "└" + String(repeating: "─", count: width))
        let room = max(0, width - from.count - to.count)
        lines.append(gutter + " " + from + String(repeating: " ", count: room) + to)
        let legend = series.enumerated().map { order, line in
            paint(order == 0 ? "━━" : "┅┅", line.color) + " " + line.name
        }
        lines.append(gutter + " " + legend.joined(separator: "   "))
        return lines
    }

    /// The y labels: top and bottom rows and every fourth row between, each the value at the
    /// middle of its row (the extremes at the extreme dots, so they read as the data's range).
    private func yLabel(row: Int, range: (low: Double, high: Double)) -> Double? {
        let dotRows = Double(height * 4 - 1)
        switch row {
        case 0: return range.high
        case height - 1: return range.low
        case _ where row % 4 == 0 && row < height - 2:
            return range.high - (Double(row * 4) + 1.5) / dotRows * (range.high - range.low)
        default: return nil
        }
    }

    /// The dots of one series: one sample per dot column (every other one when dotted), each
    /// joined to the previous sample by filling the vertical gap, so steep moves stay connected.
    private func dots(of values: [Double], range: (low: Double, high: Double), dotted: Bool) -> [Dot] {
        guard !values.isEmpty else { return [] }
        let columns = width * 2
        let rows = height * 4
        var result: [Dot] = []
        var previous: Int?
        for column in 0..<columns {
            let index = values.count == 1 ? 0 : Int((Double(column) * Double(values.count - 1) / Double(columns - 1)).rounded())
            let value = values[index]
            guard value.isFinite else { previous = nil; continue }
            let fraction = (value - range.low) / (range.high - range.low)
            let row = rows - 1 - min(rows - 1, max(0, Int((fraction * Double(rows - 1)).rounded())))
            // A dotted line skips every other column and connects across the gap, so it reads
            // as one dashed line rather than scattered points.
            if dotted && column % 2 == 1 { continue }
            let from = previous ?? row
            for r in min(from, row)...max(from, row) where r == row || r != from {
                result.append(Dot(column: column, row: r))
            }
            previous = row
        }
        return result
    }

    private func paint(_ text: String, _ color: Color?) -> String {
        guard useColor, let color else { return text }
        return "\u{1B}[\(color.rawValue)m\(text)\u{1B}[0m"
    }

    struct Dot {
        var column: Int
        var row: Int
    }

    /// One braille character: the dot bits (Unicode's braille numbering) and who drew last.
    struct Cell {
        var bits: UInt8 = 0
        var color: Color?

        /// Bit of the dot at (x, y) within the 2×4 cell, per the Unicode braille block.
        static let bit: [[UInt8]] = [[0x01, 0x02, 0x04, 0x40], [0x08, 0x10, 0x20, 0x80]]

        mutating func add(dot: Dot, color: Color) {
            bits |= Self.bit[dot.column % 2][dot.row % 4]
            self.color = color
        }

        var character: String {
            bits == 0 ? " " : UnicodeScalar(0x2800 + UInt32(bits)).map { String($0) } ?? "?"
        }
    }
}
