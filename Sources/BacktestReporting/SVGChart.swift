import BacktestCore
import Foundation

/// An inline SVG line chart for the HTML report: no script, no external resource, so the report
/// opens offline and can be mailed as one file.
struct SVGChart {
    struct Series {
        var name: String
        var values: [Double]
        var color: String
        /// Fill the area between the line and zero (the drawdown chart).
        var filled = false
    }

    var title: String
    var dates: [TradingDate]
    var series: [Series]
    var yLabel: (Double) -> String
    var width = 960.0
    var height = 320.0
    /// Curves longer than this are thinned evenly; a browser draws 2,000 points as smooth as 5,000.
    static let maxPoints = 2000

    private let margin = (left: 80.0, right: 16.0, top: 28.0, bottom: 36.0)

    func render() -> String {
        let finite = series.flatMap(\.values).filter(\.isFinite)
        guard var low = finite.min(), var high = finite.max(), dates.count > 1 else {
            return "<p class=\"empty\">\(HTML.escape(title)): no data</p>"
        }
        if series.contains(where: \.filled) { high = max(high, 0); low = min(low, 0) }
        if high == low { high += max(abs(high) * 0.01, 1); low -= max(abs(low) * 0.01, 1) }
        let plot = (x: margin.left, y: margin.top, w: width - margin.left - margin.right, h: height - margin.top - margin.bottom)
        func x(_ i: Int) -> Double { plot.x + plot.w * Double(i) / Double(dates.count - 1) }
        func y(_ v: Double) -> Double { plot.y + plot.h * (1 - (v - low) / (high - low)) }

        var svg = """
            <svg viewBox="0 0 \(Int(width)) \(Int(height))" role="img" \
            aria-label="\(HTML.escape(title))">
            <text x="\(plot.x)" y="18" class="title">\(HTML.escape(title))</text>

            """
        for tick in 0...4 {
            let value = low + (high - low) * Double(tick) / 4
            let ty = y(value)
            svg += "<line x1=\"\(plot.x)\" x2=\"\(plot.x + plot.w)\" y1=\(q(ty)) y2=\(q(ty)) class=\"grid\"/>"
            svg += "<text x=\"\(plot.x - 6)\" y=\(q(ty + 4)) text-anchor=\"end\">\(HTML.escape(yLabel(value)))</text>\n"
        }
        for tick in 0...4 {
            let i = (dates.count - 1) * tick / 4
            let anchor = tick == 0 ? "start" : tick == 4 ? "end" : "middle"
            svg += "<text x=\(q(x(i))) y=\(q(plot.y + plot.h + 20)) text-anchor=\"\(anchor)\">\(dates[i].iso)</text>\n"
        }
        let stride = max(1, dates.count / Self.maxPoints)
        var indices = Array(Swift.stride(from: 0, to: dates.count, by: stride))
        if indices.last != dates.count - 1 { indices.append(dates.count - 1) }
        for line in series {
            let points = indices.filter { line.values.indices.contains($0) && line.values[$0].isFinite }
                .map { "\(fmt(x($0))),\(fmt(y(line.values[$0])))" }
            guard !points.isEmpty else { continue }
            if line.filled {
                let zero = fmt(y(0))
                let first = points[0].split(separator: ",")[0]
                let last = points[points.count - 1].split(separator: ",")[0]
                svg += "<polygon points=\"\(first),\(zero) \(points.joined(separator: " ")) \(last),\(zero)\" fill=\"\(line.color)\" fill-opacity=\"0.25\" stroke=\"none\"/>\n"
            }
            svg += "<polyline points=\"\(points.joined(separator: " "))\" fill=\"none\" stroke=\"\(line.color)\" stroke-width=\"1.5\"/>\n"
        }
        var legendX = plot.x + plot.w
        for line in series.reversed() {
            let label = HTML.escape(line.name)
            legendX -= Double(line.name.count) * 7 + 30
            svg += "<rect x=\(q(legendX)) y=\"10\" width=\"12\" height=\"4\" fill=\"\(line.color)\"/>"
            svg += "<text x=\(q(legendX + 16)) y=\"16\">\(label)</text>\n"
        }
        return svg + "</svg>"
    }

    private func fmt(_ value: Double) -> String { String(format: "%.1f", value) }
    private func q(_ value: Double) -> String { "\"\(fmt(value))\"" }
}
