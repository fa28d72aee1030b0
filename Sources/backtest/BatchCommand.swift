import ArgumentParser
import BacktestClient
import BacktestCommandLine
import BacktestCore
import BacktestModel
import BacktestReporting
import Foundation

/// `backtest batch strategy.json --vary positions[0].weight=0.25,0.5,1`: runs the variants of a
/// strategy as one batch and shows the table as results stream in.
///
/// On a terminal the table is redrawn in place ("Partial Results (3/8 complete)", "Running..."
/// for the rest); in a pipe each update is one line, and the final table comes at the end.
/// Sorting and `--csv` wait for the final update: a batch that ends early (cancelled, failed,
/// connection lost) prints its partial table, writes no CSV and exits non-zero (130 after Ctrl-C,
/// which cancels the batch on the server: `BatchInterrupt`).
struct BatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch",
        abstract: "Run variants of a strategy as one batch and rank them.",
        discussion: """
            Variants are the cartesian product of every --vary (and the entries of --variants):
              --vary positions[0].weight=0.25,0.5,0.75,1 --vary commission_bps=1,5   (8 variants)
            Paths follow the strategy file's JSON: name, fill, commission_bps, slippage_bps,
            rebalance, allow_leverage, positions[i].ticker|weight|entry|exit and the keys inside
            conditions (positions[0].entry.rhs=sma:100,sma:200); positions[*].weight sets every
            position. Values are JSON, or plain strings when they are not JSON.
            """)

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var input: StrategyInput

    @Option(name: .customLong("vary"), help: ArgumentHelp("path=value1,value2,... (repeatable).", valueName: "path=values"))
    var vary: [String] = []
    @Option(help: ArgumentHelp("JSON array of overrides, e.g. [{\"positions[0].weight\": 0.5}, {\"commission_bps\": 5}].", valueName: "file.json"))
    var variants: String?
    @Option(parsing: .unconditional, help: "Variants the server runs at once (0 = its default).")
    var maxParallel = 0
    @Option(help: ArgumentHelp("Metric the final table is sorted by, best first: \(BatchMetric.allCases.map(\.rawValue).joined(separator: ", ")).", valueName: "metric"))
    var sortBy: String = BatchMetric.sharpe.rawValue
    @Option(help: ArgumentHelp("Write the final table as CSV (only once the batch is final).", valueName: "file.csv"))
    var csv: String?
    @Flag(help: "Print one JSON document at the end instead of the live table.")
    var json = false
    @OptionGroup var deadline: DeadlineOption

    func validate() throws {
        guard BatchMetric(name: sortBy) != nil else {
            throw ValidationError("--sort-by '\(sortBy)' is not a metric; use one of: \(BatchMetric.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard vary.isEmpty == false || variants != nil else {
            throw ValidationError("nothing to vary: pass --vary path=v1,v2,... or --variants file.json")
        }
        guard maxParallel >= 0 else { throw ValidationError("--max-parallel must be 0 or more, not \(maxParallel)") }
        try OutputFile.check(csv, flag: "--csv")
    }

    func run() async throws {
        let loaded = try input.load()
        let expanded: [Variant]
        do {
            let options = try vary.map { text throws(BacktestError) in try VaryOption(parsing: text) }
            let variantsData = try variants.map { path in
                try InputFile.read(path)
            }
            expanded = try VariantExpansion.expand(base: loaded.data, vary: options, variantsFile: variantsData)
        } catch {
            throw reportFailure(error)
        }
        let metric = BatchMetric(name: sortBy) ?? .sharpe
        var redraw = LiveRedraw()
        let (table, interrupted) = try await stream(expanded, settings: loaded.settings, redraw: &redraw)
        try finish(table, metric: metric, redraw: &redraw, interrupted: interrupted)
    }

    /// Follows the batch to its end, redrawing as updates arrive. Ctrl-C cancels the batch on the
    /// server and the stream then ends CANCELLED: `interrupted` says it was pressed.
    private func stream(
        _ variants: [Variant], settings: BacktestSettings, redraw: inout LiveRedraw
    ) async throws -> (table: BatchTable, interrupted: Bool) {
        var table = BatchTable(variants: variants)
        let live = !json && Terminal.stdoutIsTTY
        if live { Terminal.write(redraw.frame(Self.fitted(table.render()))) } else if !json { print(table.header) }
        let client = try connection.makeClient(timeout: deadline.duration)
        let interrupt = BatchInterrupt(client: client)
        defer { interrupt.remove() }
        let updates = client.runBatch(
            variants.map(\.strategy), settings: settings, maxParallel: maxParallel,
            timeout: deadline.duration,
            onBatchID: { interrupt.announce($0) })
        do {
            for try await update in updates {
                table.apply(update)
                if live {
                    Terminal.write(redraw.frame(Self.fitted(table.render())))
                } else if !json && !table.isFinal {
                    // The final table follows; its own header says "Final Results".
                    print(table.progressLine(after: update))
                }
            }
        } catch {
            table.interrupt(error as? BacktestError ?? BacktestError(.unavailable, "\(error)"))
        }
        await client.close()
        return (table, interrupt.wasInterrupted)
    }

    /// Lines cut to the terminal's width: a wrapped line would throw off the redraw's line count.
    private static func fitted(_ lines: [String]) -> [String] {
        guard let columns = Terminal.columns else { return lines }
        return lines.map { $0.count < columns ? $0 : String($0.prefix(max(1, columns - 2))) + "…" }
    }

    /// Sorted table and CSV when the batch is final; otherwise the partial table and exit 1.
    private func finish(_ table: BatchTable, metric: BatchMetric, redraw: inout LiveRedraw, interrupted: Bool) throws {
        guard let final = table.finalized(sortBy: metric) else {
            if json {
                Terminal.write(String(decoding: try BatchDocument(unfinished: table).json(), as: UTF8.self) + "\n")
            } else if !Terminal.stdoutIsTTY {
                print(table.render().joined(separator: "\n"))
            }
            printError("batch did not finish (\(table.header))\(csv == nil ? "" : "; no CSV written")"
                + (table.error.map { ": \(BatchTableLayout.describe($0))" } ?? ""))
            throw ExitCode(interrupted ? 130 : 1)
        }
        if let csv {
            do {
                try OutputFile.write(final.csv(), to: csv)
            } catch {
                throw reportFailure(error)
            }
        }
        if json {
            Terminal.write(String(decoding: try BatchDocument(final).json(), as: UTF8.self) + "\n")
            return
        }
        if Terminal.stdoutIsTTY {
            Terminal.write(redraw.frame(Self.fitted(final.render())))
        } else {
            print(final.render().joined(separator: "\n"))
        }
        if let csv { print("\nCSV written to \(csv)") }
    }
}
