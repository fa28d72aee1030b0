import BacktestModel
import Foundation

/// One metric over a two-axis grid, as backtesting.py's `plot_heatmaps` and vectorbt's
/// `heatmap` show a sweep: rows are the first axis's values, columns the second's, each cell the
/// metric of the variant at (row, column). The grid's first axis changes slowest, so variant
/// `index` sits at row `index / columns`, column `index % columns`.
package struct SweepHeatmap: Sendable {
    package let metric: SummaryMetric
    package let rowAxis: GridAxis
    package let columnAxis: GridAxis
    /// Row-major, `rowAxis.values.count x columnAxis.values.count`; NaN where a variant failed
    /// or has not been seen.
    package let cells: [Double]

    package var rowCount: Int { rowAxis.values.count }
    package var columnCount: Int { columnAxis.values.count }

    /// The heatmap of `rows` over `axes` (their values already expanded, as `GridAxis(parsing:)`
    /// gives them), or nil when the grid does not have exactly two axes (zipped axes count as one
    /// dimension only in the server's expansion; this view needs two plain axes).
    package init?(_ rows: [VariantResult], metric: SummaryMetric, axes: [GridAxis]) {
        guard axes.count == 2, axes.allSatisfy({ $0.zipGroup == 0 && $0.range.isEmpty && !$0.values.isEmpty }) else { return nil }
        self.metric = metric
        rowAxis = axes[0]
        columnAxis = axes[1]
        var cells = [Double](repeating: .nan, count: axes[0].values.count * axes[1].values.count)
        for row in rows {
            if let summary = row.summary, row.index >= 0, row.index < cells.count { cells[row.index] = metric.value(summary) }
        }
        self.cells = cells
        let finite = cells.filter(\.isFinite)
        if let low = finite.min(), let high = finite.max() { range = (low, high) } else { range = nil }
    }

    /// Smallest and largest finite cell; nil when there is none.
    package let range: (low: Double, high: Double)?

    /// The cell's position between the low and high ends of the metric's range, 0...1, with 1
    /// the best end (lower is better for volatility); nil for a missing value.
    package func shade(_ value: Double) -> Double? {
        guard value.isFinite, let span = range else { return nil }
        let t = span.high > span.low ? (value - span.low) / (span.high - span.low) : 1
        return metric.higherIsBetter ? t : 1 - t
    }

    /// The terminal view: a header line, then one line per row of the first axis, each cell a
    /// character from " .:-=+*#%@" (worst to best).
    package func terminalLines() -> [String] {
        guard let span = range else { return ["\(metric.rawValue): no values"] }
        let (low, high) = (span.low, span.high)
        let shades = Array(" .:-=+*#%@")
        var lines = ["\(metric.rawValue): rows \(rowAxis.path) \(rowAxis.values.first ?? "")...\(rowAxis.values.last ?? ""), "
            + "columns \(columnAxis.path) \(columnAxis.values.first ?? "")...\(columnAxis.values.last ?? ""); "
            + "range \(Format.number(low))...\(Format.number(high)) ('\(shades.first!)' worst, '\(shades.last!)' best)"]
        for r in 0..<rowCount {
            var line = ""
            for c in 0..<columnCount {
                guard let t = shade(cells[r * columnCount + c]) else { line.append("?"); continue }
                line.append(shades[min(shades.count - 1, Int(t * Double(shades.count - 1) + 0.5))])
            }
            lines.append(line)
        }
        return lines
    }

    /// An inline SVG (no script): one rectangle per cell coloured on a viridis-like scale from
    /// worst (dark purple) to best (yellow), a `<title>` per cell (hover: the two values and the
    /// metric), axis labels at up to 10 ticks each, and a colour bar.
    package func svg() -> String {
        let cellWidth = max(2.0, min(40.0, 760.0 / Double(max(columnCount, 1))))
        let cellHeight = max(2.0, min(28.0, 520.0 / Double(max(rowCount, 1))))
        let left = 110.0, top = 30.0, bottom = 70.0
        let plotWidth = cellWidth * Double(columnCount), plotHeight = cellHeight * Double(rowCount)
        let width = left + plotWidth + 110, height = top + plotHeight + bottom
        let low = range?.low ?? .nan, high = range?.high ?? .nan
        var svg = "<svg class=\"heatmap\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"\(HTML.escape(metric.rawValue)) heatmap\">\n"
        svg += "<text x=\"\(left)\" y=\"18\" class=\"title\">\(HTML.escape(metric.rawValue)) by \(HTML.escape(rowAxis.path)) (rows) and \(HTML.escape(columnAxis.path)) (columns)</text>\n"
        for r in 0..<rowCount {
            for c in 0..<columnCount {
                let value = cells[r * columnCount + c]
                let x = left + Double(c) * cellWidth, y = top + Double(r) * cellHeight
                let fill = shade(value).map(Self.color) ?? "#ffffff"
                svg += "<rect x=\"\(Self.f(x))\" y=\"\(Self.f(y))\" width=\"\(Self.f(cellWidth))\" height=\"\(Self.f(cellHeight))\" fill=\"\(fill)\">"
                svg += "<title>\(HTML.escape(rowAxis.values[r])), \(HTML.escape(columnAxis.values[c])): \(HTML.escape(value.isFinite ? Format.number(value) : "no value"))</title></rect>\n"
            }
        }
        for r in Self.ticks(rowCount) {
            let y = top + (Double(r) + 0.5) * cellHeight + 4
            svg += "<text x=\"\(Self.f(left - 6))\" y=\"\(Self.f(y))\" text-anchor=\"end\">\(HTML.escape(rowAxis.values[r]))</text>\n"
        }
        for c in Self.ticks(columnCount) {
            let x = left + (Double(c) + 0.5) * cellWidth
            svg += "<text x=\"\(Self.f(x))\" y=\"\(Self.f(top + plotHeight + 16))\" text-anchor=\"middle\">\(HTML.escape(columnAxis.values[c]))</text>\n"
        }
        svg += "<text x=\"\(Self.f(left + plotWidth / 2))\" y=\"\(Self.f(top + plotHeight + 40))\" text-anchor=\"middle\">\(HTML.escape(columnAxis.path))</text>\n"
        // Colour bar: best at the top.
        let barX = left + plotWidth + 30
        for step in 0..<20 {
            let t = 1 - Double(step) / 19
            svg += "<rect x=\"\(Self.f(barX))\" y=\"\(Self.f(top + plotHeight * Double(step) / 20))\" width=\"14\" height=\"\(Self.f(plotHeight / 20 + 0.5))\" fill=\"\(Self.color(t))\"/>\n"
        }
        let (topValue, bottomValue) = metric.higherIsBetter ? (high, low) : (low, high)
        svg += "<text x=\"\(Self.f(barX + 20))\" y=\"\(Self.f(top + 10))\">\(HTML.escape(Format.number(topValue)))</text>\n"
        svg += "<text x=\"\(Self.f(barX + 20))\" y=\"\(Self.f(top + plotHeight))\">\(HTML.escape(Format.number(bottomValue)))</text>\n"
        svg += "</svg>"
        return svg
    }

    /// Up to 10 evenly spaced label positions, first and last included.
    static func ticks(_ count: Int) -> [Int] {
        guard count > 0 else { return [] }
        let step = max(1, Int((Double(count - 1) / 9).rounded(.up)))
        var positions = Array(stride(from: 0, to: count, by: step))
        if positions.last != count - 1 { positions.append(count - 1) }
        return positions
    }

    /// A viridis-like colour at t in 0...1 (interpolated between five of viridis's stops).
    static func color(_ t: Double) -> String {
        let stops: [(Double, Double, Double)] = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]
        let position = min(max(t, 0), 1) * Double(stops.count - 1)
        let i = min(Int(position), stops.count - 2)
        let u = position - Double(i)
        let (a, b) = (stops[i], stops[i + 1])
        func mix(_ x: Double, _ y: Double) -> Int { Int((x + (y - x) * u).rounded()) }
        return String(format: "#%02x%02x%02x", mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
    }

    static func f(_ value: Double) -> String { String(format: "%.1f", value) }
}

/// `backtest sweep --report out.html`: one self-contained page (no script, no external resource)
/// with the sweep's figures, the top variants by the ranking metric and, for a two-axis grid,
/// the heatmap of a metric.
package struct SweepHTMLReport: Sendable {
    package var title: String
    package var rows: [VariantResult]
    package var axes: [GridAxis]
    package var rankBy: SummaryMetric
    package var heatmapMetric: SummaryMetric
    package var top = 20
    /// A line under the title (batch id, timing).
    package var meta = ""

    package init(title: String, rows: [VariantResult], axes: [GridAxis], rankBy: SummaryMetric, heatmapMetric: SummaryMetric) {
        self.title = title
        self.rows = rows
        self.axes = axes
        self.rankBy = rankBy
        self.heatmapMetric = heatmapMetric
    }

    package func render() -> String {
        let failed = rows.filter { $0.summary == nil }.count
        var html = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(HTML.escape(title)) – sweep report</title>
            <style>\(Self.style)</style>
            </head>
            <body>
            <h1>\(HTML.escape(title))</h1>
            <p class="meta">\(rows.count) variants\(failed > 0 ? ", \(failed) failed" : "")\(meta.isEmpty ? "" : "; " + HTML.escape(meta))</p>

            """
        if let heatmap = SweepHeatmap(rows, metric: heatmapMetric, axes: axes) {
            html += "<h2>Heatmap</h2>\n" + heatmap.svg() + "\n"
        } else {
            html += "<p class=\"meta\">(a heatmap needs a grid of exactly two axes; this one has \(axes.count))</p>\n"
        }
        var ranked: [(VariantResult, BacktestSummary)] = rows.compactMap { row in row.summary.map { (row, $0) } }
        ranked.sort { a, b in
            let (x, y) = (rankBy.value(a.1), rankBy.value(b.1))
            return x == y ? a.0.index < b.0.index : rankBy.ranksBefore(x, y)
        }
        html += "<h2>Top \(min(top, ranked.count)) by \(HTML.escape(rankBy.rawValue))</h2>\n<table><thead><tr><th>rank</th><th>index</th>"
        html += axes.map { "<th>\(HTML.escape($0.path))</th>" }.joined()
        html += "<th>\(HTML.escape(rankBy.rawValue))</th><th>total return</th><th>max drawdown</th><th>trades</th><th>final equity</th></tr></thead><tbody>\n"
        for (rank, (row, summary)) in ranked.prefix(top).enumerated() {
            html += "<tr><td>\(rank + 1)</td><td>\(row.index)</td>"
            html += row.parameters.map { "<td>\(HTML.escape($0.value))</td>" }.joined()
            html += "<td>\(HTML.escape(Format.number(rankBy.value(summary))))</td><td>\(HTML.escape(Format.percent(summary.metrics.totalReturn)))</td>"
            html += "<td>\(HTML.escape(Format.percent(summary.metrics.maxDrawdown)))</td><td>\(summary.metrics.tradeCount)</td>"
            html += "<td>\(HTML.escape(Format.money(summary.finalEquity)))</td></tr>\n"
        }
        html += "</tbody></table>\n</body>\n</html>\n"
        return html
    }

    private static let style = """
        body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
        h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.6em}
        .meta{color:#666}svg{width:100%;height:auto;display:block;margin:1em 0}
        svg text{font-size:11px;fill:#444}svg .title{font-weight:600;font-size:13px}
        table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}
        """
}
