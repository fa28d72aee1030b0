import BacktestModel
import Foundation

/// `backtest run --report out.html`: one self-contained HTML file with the equity curve against
/// the benchmark, the drawdowns, the metrics table, the warnings and the orders.
///
/// Self-contained means no script at all and no external resource (fonts, CSS, CDNs): the charts
/// are inline SVG and the styles an inline `<style>`. Every piece of text that came from the
/// strategy or the server (names, tickers, warnings) is HTML-escaped.
package struct HTMLReport: Sendable {
    package let result: BacktestResult
    /// Orders beyond this are summarised, so a daily-rebalancing strategy does not make a 50 MB page.
    package var maxOrders = 5_000

    package init(result: BacktestResult) {
        self.result = result
    }

    package func render() -> String {
        let report = ResultReport(result: result)
        let title = HTML.escape(report.title)
        let benchmarkName = result.benchmarkTicker.isEmpty ? "benchmark" : result.benchmarkTicker
        var html = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(title) – backtest report</title>
            <style>\(Self.style)</style>
            </head>
            <body>
            <h1>\(title)</h1>
            <p class="meta">\(HTML.escape(report.period))<br>
            initial capital \(HTML.escape(Format.money(result.initialCapital))) → final equity \
            \(HTML.escape(Format.money(result.finalEquity))); \(result.orders.count) orders</p>

            """
        html += SVGChart(
            title: "Equity", dates: result.dates,
            series: [.init(name: report.title, values: result.equity, color: "#1f77b4"),
                     .init(name: benchmarkName, values: result.benchmark, color: "#ff7f0e")],
            yLabel: Format.compactMoney
        ).render()
        html += "\n"
        html += SVGChart(
            title: "Drawdown", dates: result.dates,
            series: [.init(name: report.title, values: Self.drawdowns(result.equity), color: "#d62728", filled: true),
                     .init(name: benchmarkName, values: Self.drawdowns(result.benchmark), color: "#7f7f7f")],
            yLabel: Format.percent, height: 220
        ).render()
        html += "\n<h2>Metrics</h2>\n<table class=\"metrics\"><thead><tr><th>metric</th><th>strategy</th><th>\(HTML.escape(benchmarkName))</th></tr></thead><tbody>\n"
        for row in report.metricRows {
            html += "<tr><td>\(HTML.escape(row.name))</td><td>\(HTML.escape(row.strategy))</td><td>\(HTML.escape(row.benchmark))</td></tr>\n"
        }
        html += "</tbody></table>\n"
        if !result.warnings.isEmpty {
            html += "<h2>Warnings</h2>\n<ul class=\"warnings\">\n"
            html += result.warnings.map { "<li>\(HTML.escape($0.message))</li>\n" }.joined()
            html += "</ul>\n"
        }
        html += ordersSection()
        html += "<p class=\"meta\">\(HTML.escape(report.timing))</p>\n</body>\n</html>\n"
        return html
    }

    private func ordersSection() -> String {
        var html = "<h2>Orders</h2>\n"
        guard !result.orders.isEmpty else { return html + "<p>No orders.</p>\n" }
        html += "<table class=\"orders\"><thead><tr><th>date</th><th>ticker</th><th>side</th><th>quantity</th><th>price</th><th>commission</th><th>reason</th></tr></thead><tbody>\n"
        for order in result.orders.prefix(maxOrders) {
            html += "<tr><td>\(order.date.iso)</td><td>\(HTML.escape(order.ticker))</td><td class=\"\(order.side.rawValue)\">\(order.side.rawValue)</td>"
            html += "<td>\(String(format: "%.4f", order.quantity))</td><td>\(HTML.escape(Format.money(order.price)))</td>"
            html += "<td>\(HTML.escape(Format.money(order.commission)))</td><td>\(order.reason.rawValue)</td></tr>\n"
        }
        html += "</tbody></table>\n"
        if result.orders.count > maxOrders {
            html += "<p class=\"meta\">… and \(result.orders.count - maxOrders) more orders (use --json for all of them).</p>\n"
        }
        return html
    }

    /// Drawdown at each point: equity over its running peak, minus one (0 at a new high).
    static func drawdowns(_ equity: [Double]) -> [Double] {
        var peak = -Double.infinity
        return equity.map { value in
            peak = max(peak, value)
            return peak > 0 && value.isFinite ? value / peak - 1 : .nan
        }
    }

    private static let style = """
        body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222;padding:0 1em}
        h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.6em}
        .meta{color:#666}svg{width:100%;height:auto;display:block;margin:1em 0}
        svg text{font-size:12px;fill:#444}svg .title{font-weight:600;font-size:14px}
        svg .grid{stroke:#e5e5e5;stroke-width:1}
        table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}
        td:first-child,th:first-child{text-align:left}.orders{font-size:12px}
        .buy{color:#2a7d2a}.sell{color:#b22}.warnings li{color:#8a5a00}
        """
}

/// Escaping for text and attribute values.
package enum HTML {
    package static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }
}
