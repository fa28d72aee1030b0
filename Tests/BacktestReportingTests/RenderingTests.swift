import BacktestCore
import BacktestReporting
import Foundation
import Testing

@Suite("Terminal chart")
struct TerminalChartTests {
    /// The dot rows set in each dot column of the plot lines, read back from the braille code
    /// points (Unicode's dot numbering, not our encoder's tables).
    static func dots(_ lines: [String], width: Int, height: Int) -> [[Int]] {
        var columns = [[Int]](repeating: [], count: width * 2)
        let bits: [(x: Int, y: Int, bit: UInt32)] = [(0, 0, 0x01), (0, 1, 0x02), (0, 2, 0x04), (1, 0, 0x08), (1, 1, 0x10), (1, 2, 0x20), (0, 3, 0x40), (1, 3, 0x80)]
        for (row, line) in lines.prefix(height).enumerated() {
            let plot = Array(line.unicodeScalars).suffix(width)
            for (cell, scalar) in plot.enumerated() where (0x2800...0x28FF).contains(scalar.value) {
                for dot in bits where (scalar.value - 0x2800) & dot.bit != 0 {
                    columns[cell * 2 + dot.x].append(row * 4 + dot.y)
                }
            }
        }
        return columns
    }

    @Test("fixed dimensions whatever the data", arguments: [(40, 8), (64, 14), (100, 20)])
    func dimensions(width: Int, height: Int) throws {
        for result in [try Fixtures.smaCrossover(weight: 1), Fixtures.handMade(equity: [5, 5, 5])] {
            let lines = TerminalChart(width: width, height: height).render(result)
            #expect(lines.count == height + 3)
            for line in lines.prefix(height) {
                #expect(line.count == TerminalChart.labelWidth + 2 + width, "\(line)")
            }
            #expect(lines.last?.contains("SPY") == true)
            #expect(!lines.joined().contains("\u{1B}"))
        }
    }

    @Test("a rising series climbs from the bottom-left to the top-right")
    func monotoneGoesUp() throws {
        let width = 30, height = 8
        let rising = (0..<500).map { 100 + Double($0) * Double($0) / 100 }
        let chart = TerminalChart(width: width, height: height)
        let lines = chart.render([.init(name: "up", values: rising, color: .cyan)], from: "a", to: "b")
        let columns = Self.dots(lines, width: width, height: height)
        #expect(columns.allSatisfy { !$0.isEmpty })
        let tops = columns.compactMap { $0.min() }
        #expect(zip(tops, tops.dropFirst()).allSatisfy { $0 >= $1 }, "\(tops)")
        #expect(columns.first?.max() == height * 4 - 1)
        #expect(columns.last?.min() == 0)
        #expect(lines[0].hasPrefix(Format.padLeft(Format.compactMoney(rising.max()!), TerminalChart.labelWidth)))
        #expect(lines[height - 1].hasPrefix(Format.padLeft(Format.compactMoney(rising.min()!), TerminalChart.labelWidth)))
    }

    @Test("colors only when asked")
    func colors() throws {
        let result = Fixtures.handMade(equity: [1, 2, 3, 4], benchmark: [4, 3, 2, 1])
        #expect(TerminalChart(useColor: true).render(result).joined().contains("\u{1B}[36m"))
        #expect(!TerminalChart(useColor: false).render(result).joined().contains("\u{1B}"))
    }
}

@Suite("HTML report")
struct HTMLReportTests {
    @Test("self-contained: inline SVG charts, no external resource, no script")
    func selfContained() throws {
        let html = HTMLReport(result: try Fixtures.smaCrossover(weight: 1)).render()
        #expect(html.components(separatedBy: "<svg").count - 1 == 2)
        #expect(html.contains("<polyline"))
        for forbidden in ["http:", "https:", "src=", "href=", "<script", "<link", "@import", "url("] {
            #expect(!html.lowercased().contains(forbidden), "\(forbidden)")
        }
        #expect(html.contains("<h2>Orders</h2>") && html.contains("<td>buy</td>") == false)
        #expect(html.contains("class=\"buy\">buy</td>"))
    }

    @Test("names, tickers and warnings are escaped")
    func escapes() {
        let name = #"<script>alert("x")</script> & <img src=x onerror=alert(1)>"#
        let html = HTMLReport(result: Fixtures.handMade(equity: [100, 110, 105], name: name)).render()
        #expect(!html.contains("<script>"))
        #expect(!html.contains("<img"))
        #expect(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img"))
        #expect(html.contains("a warning with &lt;b&gt;markup&lt;/b&gt;"))
    }
}

@Suite("JSON of a result")
struct ResultDocumentTests {
    @Test("round trip keeps the key fields; keys are snake_case, dates YYYY-MM-DD")
    func roundTrip() throws {
        let result = try Fixtures.smaCrossover(weight: 1)
        let data = try ResultDocument(result).json()
        let decoded = try ResultDocument.decode(data)
        #expect(decoded == ResultDocument(result))
        #expect(decoded.strategyName == result.strategyName)
        #expect(decoded.start == result.dates.first && decoded.end == result.dates.last)
        #expect(decoded.metrics.sharpe == result.metrics.sharpe)
        #expect(decoded.benchmarkMetrics.totalReturn == result.benchmarkMetrics.totalReturn)
        #expect(decoded.equityCurve.count == result.dates.count)
        #expect(decoded.equityCurve.map(\.equity) == result.equity.map(Optional.some))
        #expect(decoded.orders.count == result.orders.count)

        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        for key in ["strategy_name", "benchmark_metrics", "equity_curve", "final_equity", "initial_capital", "warnings", "orders"] {
            #expect(object[key] != nil, "\(key)")
        }
        let metrics = try #require(object["metrics"] as? [String: Any])
        #expect(metrics["max_drawdown"] is Double && metrics["trade_count"] is Int)
        let first = try #require((object["orders"] as? [[String: Any]])?.first)
        let date = try #require(first["date"] as? String)
        #expect(TradingDate(iso: date) == result.orders.first?.date)
    }

    @Test("an infinite metric is null, and the key stays")
    func infiniteIsNull() throws {
        let data = try ResultDocument(Fixtures.handMade(equity: [1, 2])).json()
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains("\"profit_factor\" : null"))
        #expect(try ResultDocument.decode(data).metrics.profitFactor == nil)
    }
}
