import ArgumentParser
import BacktestClient
import BacktestCore
import BacktestEngine
import Foundation

/// `backtest run strategy.json`: runs one backtest on the server and prints the metrics of the
/// strategy against its benchmark, the warnings, and where the time went.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one backtest from a strategy file (the format of examples/strategies).")

    @OptionGroup var connection: ConnectionOptions

    @Argument(help: "Strategy file: the strategy plus optional start, end, initial_capital, adjustment, benchmark.")
    var file: String

    @Option(help: "Start date YYYY-MM-DD (overrides the file's).")
    var start: String?
    @Option(help: "End date YYYY-MM-DD (overrides the file's).")
    var end: String?

    func run() async throws {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: file))
        } catch {
            throw ValidationError("cannot read \(file): \(error.localizedDescription)")
        }
        let strategyFile = try StrategyFile.decode(data)
        guard let start = try date(start, strategyFile.start, "start"), let end = try date(end, strategyFile.end, "end") else {
            throw ValidationError("\(file) names no start/end date: add \"start\" and \"end\" or pass --start/--end")
        }
        let settings = strategyFile.settings(defaults: BacktestSettings(start: start, end: end))
        let client = try connection.makeClient()
        defer { Task { await client.close() } }
        let result = try await client.runBacktest(strategyFile.strategy, settings: settings)
        print(ResultReport(result: result).text)
    }

    private func date(_ flag: String?, _ fromFile: TradingDate?, _ name: String) throws -> TradingDate? {
        guard let flag else { return fromFile }
        guard let date = TradingDate(iso: flag) else { throw ValidationError("--\(name) '\(flag)' is not a YYYY-MM-DD date") }
        return date
    }
}

/// The plain-text report of one result.
struct ResultReport {
    let result: BacktestResult

    var text: String {
        var lines: [String] = []
        let first = result.dates.first.map(\.iso) ?? "-"
        let last = result.dates.last.map(\.iso) ?? "-"
        lines.append("\(result.strategyName.isEmpty ? "backtest" : result.strategyName)")
        lines.append("\(first) .. \(last), \(result.dates.count) trading days, data: \(result.dataSource), engine: \(result.stats.engine)")
        lines.append("initial capital \(money(result.initialCapital)) -> final equity \(money(result.finalEquity)); \(result.orders.count) orders")
        lines.append("")
        lines.append(row("metric", "strategy", result.benchmarkTicker))
        let s = result.metrics
        let b = result.benchmarkMetrics
        lines.append(row("total return", percent(s.totalReturn), percent(b.totalReturn)))
        lines.append(row("CAGR", percent(s.cagr), percent(b.cagr)))
        lines.append(row("volatility", percent(s.volatility), percent(b.volatility)))
        lines.append(row("Sharpe", number(s.sharpe), number(b.sharpe)))
        lines.append(row("Sortino", number(s.sortino), number(b.sortino)))
        lines.append(row("max drawdown", percent(s.maxDrawdown), percent(b.maxDrawdown)))
        lines.append(row("drawdown days", "\(s.maxDrawdownDuration)", "\(b.maxDrawdownDuration)"))
        lines.append(row("Calmar", number(s.calmar), number(b.calmar)))
        lines.append(row("alpha / beta", "\(number(s.alpha)) / \(number(s.beta))", "-"))
        lines.append(row("trades / win rate", "\(s.tradeCount) / \(percent(s.winRate))", "-"))
        lines.append(row("profit factor", number(s.profitFactor), "-"))
        lines.append(row("exposure", percent(s.exposure), "-"))
        if !result.warnings.isEmpty {
            lines.append("")
            lines.append("warnings:")
            lines += result.warnings.map { "  - \($0)" }
        }
        let t = result.stats
        lines.append("")
        lines.append(String(
            format: "time: %.2f ms (analysis %.2f, data %.2f, indicators %.2f, simulation %.2f); cache %d hits / %d misses (%.1f%%); %d API calls",
            t.totalMs, t.analysisMs, t.dataMs, t.indicatorsMs, t.simulationMs, t.cacheHits, t.cacheMisses, t.cacheHitRate * 100, t.apiCalls))
        return lines.joined(separator: "\n")
    }

    private func row(_ a: String, _ b: String, _ c: String) -> String {
        a.padding(toLength: 20, withPad: " ", startingAt: 0) + b.padding(toLength: 18, withPad: " ", startingAt: 0) + c
    }
    private func percent(_ value: Double) -> String { String(format: "%.2f%%", value * 100) }
    private func number(_ value: Double) -> String { value.isFinite ? String(format: "%.3f", value) : "inf" }
    private func money(_ value: Double) -> String { String(format: "$%.2f", value) }
}
