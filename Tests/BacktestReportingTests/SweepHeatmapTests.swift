import BacktestCore
import BacktestModel
@testable import BacktestReporting
import Testing

/// The heatmap of a two-axis sweep, in the terminal and in the HTML report.
@Suite struct SweepHeatmapTests {
    static let axes = [
        GridAxis(path: "positions[0].entry.lhs", values: ["sma:5", "sma:6"]),
        GridAxis(path: "positions[0].entry.rhs", values: ["sma:110", "sma:111", "sma:112"]),
    ]

    /// Variant i's sharpe is i (so the best is the last cell); `failing` are errors.
    static func rows(failing: Set<Int> = []) -> [VariantResult] {
        (0..<6).map { i in
            var metrics = Metrics()
            metrics.sharpe = Double(i)
            metrics.volatility = Double(i)
            let parameters = [GridParameter(path: axes[0].path, value: axes[0].values[i / 3]),
                              GridParameter(path: axes[1].path, value: axes[1].values[i % 3])]
            if failing.contains(i) {
                return VariantResult(index: i, detail: .failure(BacktestError(.invalidArgument, "bad <variant>")), parameters: parameters)
            }
            return VariantResult(index: i, detail: .summary(BacktestSummary(
                strategyName: "v\(i)", metrics: metrics, benchmarkMetrics: Metrics(), finalEquity: 100 + Double(i),
                initialCapital: 100, orderCount: 2, warnings: [], stats: RunStatistics())), parameters: parameters)
        }
    }

    @Test func cellsAreRowMajorFirstAxisSlowestFromWorstToBest() throws {
        let map = try #require(SweepHeatmap(Self.rows(failing: [4]).shuffled(), metric: .sharpe, axes: Self.axes))
        #expect(map.rowCount == 2 && map.columnCount == 3)
        #expect(map.cells[0] == 0 && map.cells[5] == 5 && map.cells[4].isNaN)
        let lines = map.terminalLines()
        #expect(lines.count == 3)
        #expect(lines[0].hasPrefix("sharpe: rows positions[0].entry.lhs sma:5...sma:6, columns positions[0].entry.rhs sma:110...sma:112"))
        // Shade index round(t x 9) of " .:-=+*#%@": 0, 1, 2 of 0...5 are ' ', ':', '='; 3 is '+',
        // the failed variant '?', 5 '@'.
        #expect(lines[1] == " :=")
        #expect(lines[2] == "+?@")
    }

    @Test func lowerIsBetterMetricsShadeTheOtherWay() throws {
        let map = try #require(SweepHeatmap(Self.rows(), metric: .volatility, axes: Self.axes))
        #expect(map.shade(0) == 1)
        #expect(map.shade(5) == 0)
        #expect(map.terminalLines()[1].first == "@")
    }

    @Test func onlyTwoAxisGridsHaveAHeatmap() {
        #expect(SweepHeatmap(Self.rows(), metric: .sharpe, axes: [Self.axes[0]]) == nil)
        #expect(SweepHeatmap(Self.rows(), metric: .sharpe, axes: Self.axes + [GridAxis(path: "commission_bps", values: ["1"])]) == nil)
    }

    @Test func theHTMLReportHasTheHeatmapAndTheTopTableWithoutScript() {
        var report = SweepHTMLReport(title: "sweep <&>", rows: Self.rows(failing: [2]), axes: Self.axes, rankBy: .sharpe, heatmapMetric: .sharpe)
        report.top = 3
        let html = report.render()
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(html.contains("<title>sweep &lt;&amp;&gt; – sweep report</title>"))
        #expect(!html.contains("<script"))
        #expect(html.contains("<svg class=\"heatmap\""))
        // 6 cells plus the colour bar's 20 steps.
        #expect(html.components(separatedBy: "<rect ").count - 1 == 6 + 20)
        #expect(html.contains("<title>sma:6, sma:112: 5"))
        #expect(html.contains("<title>sma:5, sma:112: no value</title>"))
        #expect(html.contains("6 variants, 1 failed"))
        // Top 3 by sharpe: variants 5, 4, 3.
        let top = html.components(separatedBy: "<tr><td>").dropFirst().map { $0.prefix(20) }
        #expect(top.count == 3)
        #expect(top[0].hasPrefix("1</td><td>5</td>"))
        #expect(top[2].hasPrefix("3</td><td>3</td>"))
    }

    @Test func viridisEndsAndTicks() {
        #expect(SweepHeatmap.color(0) == "#440154")
        #expect(SweepHeatmap.color(1) == "#fde725")
        #expect(SweepHeatmap.ticks(1) == [0])
        #expect(SweepHeatmap.ticks(5) == [0, 1, 2, 3, 4])
        let many = SweepHeatmap.ticks(100)
        #expect(many.first == 0 && many.last == 99 && many.count <= 11)
    }
}
