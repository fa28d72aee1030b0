import ArgumentParser
import BacktestClient
import BacktestCommandLine
import BacktestCore
import BacktestModel
import BacktestReporting
import Foundation

/// `backtest run strategy.json`: runs one backtest on the server and prints a chart of the equity
/// against the benchmark, the metrics of both, the warnings, and where the time went.
/// `--json` prints the result for machines instead (shape: `ResultDocument`); `--report` also
/// writes a self-contained HTML report.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one backtest from a strategy file (the format of examples/strategies).")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var input: StrategyInput
    @OptionGroup var deadline: DeadlineOption

    @Flag(help: "Print the result as JSON (snake_case keys, dates YYYY-MM-DD) instead of the text report.")
    var json = false
    @Option(help: ArgumentHelp("Also write a self-contained HTML report (charts, metrics, orders) to this file.", valueName: "file.html"))
    var report: String?
    @Flag(help: "Leave the terminal chart out of the text report.")
    var noChart = false

    func validate() throws {
        try OutputFile.check(report, flag: "--report")
    }

    func run() async throws {
        let loaded = try input.load()
        let client = try connection.makeClient(timeout: deadline.duration)
        let result: BacktestResult
        do {
            result = try await client.runBacktest(loaded.file.strategy, settings: loaded.settings, timeout: deadline.duration)
            await client.close()
        } catch {
            await client.close()
            throw reportFailure(error)
        }
        if let report {
            do {
                try OutputFile.write(HTMLReport(result: result).render(), to: report)
            } catch {
                throw reportFailure(error)
            }
        }
        if json {
            Terminal.write(String(decoding: try ResultDocument(result).json(), as: UTF8.self) + "\n")
            return
        }
        var chart: [String] = []
        if !noChart {
            let width = Terminal.columns.map { min(100, max(20, $0 - TerminalChart.labelWidth - 4)) } ?? 64
            chart = TerminalChart(width: width, height: 14, useColor: Terminal.useColor).render(result)
        }
        print(ResultReport(result: result).text(chart: chart))
        if let report { print("\nreport written to \(report)") }
    }
}

/// The strategy file argument and the date overrides `run` and `batch` share.
struct StrategyInput: ParsableArguments {
    @Argument(help: "Strategy file: the strategy plus optional start, end, initial_capital, adjustment, benchmark.")
    var file: String

    @Option(help: "Start date YYYY-MM-DD (overrides the file's).")
    var start: String?
    @Option(help: "End date YYYY-MM-DD (overrides the file's).")
    var end: String?

    struct Loaded {
        var data: Data
        var file: StrategyFile
        var settings: BacktestSettings
    }

    func load() throws -> Loaded {
        let data: Data
        do {
            data = try InputFile.read(file)
        } catch {
            throw ValidationError(error.message)
        }
        let strategyFile: StrategyFile
        do {
            strategyFile = try StrategyFile.decode(data)
        } catch {
            // Named by its file: a batch reads several.
            throw reportFailure(BacktestError(error.code, "\(file): \(error.message)", field: error.field))
        }
        guard let start = try date(start, strategyFile.start, "start"), let end = try date(end, strategyFile.end, "end") else {
            throw ValidationError("\(file) names no start/end date: add \"start\" and \"end\" or pass --start/--end")
        }
        guard start <= end else {
            throw ValidationError(
                "the start \(start) (\(origin(of: self.start, "start"))) is after the end \(end) (\(origin(of: self.end, "end"))): "
                    + "the start must be on or before the end")
        }
        // The flags override the file's dates (the file's other settings stay).
        var settings = strategyFile.settings(defaults: BacktestSettings(start: start, end: end))
        settings.start = start
        settings.end = end
        return Loaded(data: data, file: strategyFile, settings: settings)
    }

    /// Where a date came from, for messages: "--start" or the file's "start".
    private func origin(of flag: String?, _ name: String) -> String {
        flag == nil ? "\"\(name)\" in \(file)" : "--\(name)"
    }

    private func date(_ flag: String?, _ fromFile: TradingDate?, _ name: String) throws -> TradingDate? {
        guard let flag else { return fromFile }
        guard let date = TradingDate(iso: flag) else { throw ValidationError("--\(name) '\(flag)' is not a YYYY-MM-DD date") }
        return date
    }
}
