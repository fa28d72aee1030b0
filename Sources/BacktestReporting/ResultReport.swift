import BacktestModel
import Foundation

/// The plain-text report of one result: a header, the metrics of the strategy next to its
/// benchmark's, the warnings, and where the time went. `backtest run` prints it under the chart.
package struct ResultReport: Sendable {
    package let result: BacktestResult

    package init(result: BacktestResult) {
        self.result = result
    }

    /// One metric for both columns; "-" where a benchmark has no such thing (trades, alpha).
    package struct Row: Sendable, Hashable {
        package var name: String
        package var strategy: String
        package var benchmark: String
    }

    /// The metrics table, in the order people scan it: return, risk, risk-adjusted, trading.
    package var metricRows: [Row] {
        let s = result.metrics
        let b = result.benchmarkMetrics
        return [
            Row(name: "total return", strategy: Format.percent(s.totalReturn), benchmark: Format.percent(b.totalReturn)),
            Row(name: "CAGR", strategy: Format.percent(s.cagr), benchmark: Format.percent(b.cagr)),
            Row(name: "volatility", strategy: Format.percent(s.volatility), benchmark: Format.percent(b.volatility)),
            Row(name: "Sharpe", strategy: Format.number(s.sharpe), benchmark: Format.number(b.sharpe)),
            Row(name: "Sortino", strategy: Format.number(s.sortino), benchmark: Format.number(b.sortino)),
            Row(name: "max drawdown", strategy: Format.percent(s.maxDrawdown), benchmark: Format.percent(b.maxDrawdown)),
            Row(name: "drawdown days", strategy: "\(s.maxDrawdownDuration)", benchmark: "\(b.maxDrawdownDuration)"),
            Row(name: "Calmar", strategy: Format.number(s.calmar), benchmark: Format.number(b.calmar)),
            Row(name: "alpha / beta", strategy: "\(Format.number(s.alpha)) / \(Format.number(s.beta))", benchmark: "-"),
            Row(name: "trades / win rate", strategy: "\(s.tradeCount) / \(Format.percent(s.winRate))", benchmark: "-"),
            Row(name: "profit factor", strategy: Format.number(s.profitFactor), benchmark: "-"),
            Row(name: "exposure", strategy: Format.percent(s.exposure), benchmark: "-"),
        ]
    }

    package var title: String { result.strategyName.isEmpty ? "backtest" : result.strategyName }

    /// "2016-01-04 .. 2025-12-31, 2514 trading days, data: demo, engine: v2".
    package var period: String {
        let first = result.dates.first.map(\.iso) ?? "-"
        let last = result.dates.last.map(\.iso) ?? "-"
        return "\(first) .. \(last), \(result.dates.count) trading days, data: \(result.dataSource), engine: \(result.stats.engine)"
    }

    package var timing: String {
        let t = result.stats
        return String(
            format: "time: %.2f ms (analysis %.2f, data %.2f, indicators %.2f, simulation %.2f); cache %d hits / %d misses (%.1f%%); %d API calls",
            t.totalMs, t.analysisMs, t.dataMs, t.indicatorsMs, t.simulationMs, t.cacheHits, t.cacheMisses, t.cacheHitRate * 100, t.apiCalls)
    }

    /// The report without a chart.
    package var text: String { text(chart: []) }

    /// Header, metrics table and warnings; `chart` (already rendered lines) goes between the
    /// header and the table when given.
    package func text(chart: [String] = []) -> String {
        var lines: [String] = [title, period]
        lines.append("initial capital \(Format.money(result.initialCapital)) -> final equity \(Format.money(result.finalEquity)); \(result.orders.count) orders")
        if !chart.isEmpty {
            lines.append("")
            lines += chart
        }
        lines.append("")
        let benchmarkName = result.benchmarkTicker.isEmpty ? "benchmark" : result.benchmarkTicker
        lines.append(Self.row("metric", "strategy", benchmarkName))
        lines += metricRows.map { Self.row($0.name, $0.strategy, $0.benchmark) }
        if !result.warnings.isEmpty {
            lines.append("")
            lines.append("warnings:")
            lines += result.warnings.map { "  - \($0.message)" }
        }
        lines.append("")
        lines.append(timing)
        return lines.joined(separator: "\n")
    }

    private static func row(_ name: String, _ strategy: String, _ benchmark: String) -> String {
        Format.pad(name, 20) + Format.pad(strategy, 18) + benchmark
    }
}
