import ArgumentParser
import BacktestClient
import BacktestCommandLine
import BacktestCore
import BacktestModel
import BacktestReporting
import Foundation

/// `backtest sweep strategy.json --grid positions[0].entry.lhs=sma:5..104 --grid positions[0].entry.rhs=sma:110..209`:
/// a grid the server expands and runs as SUMMARY results, with a progress bar, the top-N table,
/// an optional heatmap of a two-axis grid, a CSV of every summary and the FULL results of the
/// best N.
struct SweepCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Run a grid of variants on the server and rank their summaries.",
        discussion: """
            Each --grid is an axis: a path of the strategy file (as for `batch --vary`) and its
            values, a comma list where an item may be a range: sma:5..104, 1..10/3, 0.25..1/0.25.
            The variants are the cartesian product of the axes, the first changing slowest.
            """)

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var input: StrategyInput

    @Option(name: .customLong("grid"), help: ArgumentHelp("path=values (repeatable); values may be ranges like sma:5..104.", valueName: "path=values"))
    var grid: [String] = []
    @Option(help: ArgumentHelp("Metric to rank by: \(SummaryMetric.allCases.map(\.rawValue).joined(separator: ", ")).", valueName: "metric"))
    var sortBy = SummaryMetric.sharpe.rawValue
    @Option(parsing: .unconditional, help: "Rows of the top table.")
    var top = 10
    @Option(help: ArgumentHelp("Show a two-axis grid's METRIC as a heatmap.", valueName: "metric"))
    var heatmap: String?
    @Option(help: ArgumentHelp("Write every summary as CSV.", valueName: "file.csv"))
    var csv: String?
    @Option(help: ArgumentHelp("Also write a self-contained HTML report: the top table and, for a two-axis grid, the heatmap of --heatmap's metric (default: --sort-by's).", valueName: "out.html"))
    var report: String?
    @Option(parsing: .unconditional, help: "Fetch the FULL results of the best N and print their figures.")
    var detail = 0
    @Option(parsing: .unconditional, help: "Variants the server runs at once (0 = its default).")
    var maxParallel = 0
    @OptionGroup var deadline: DeadlineOption

    func validate() throws {
        guard !grid.isEmpty else { throw ValidationError("pass at least one --grid path=values") }
        guard SummaryMetric(name: sortBy) != nil else { throw ValidationError("--sort-by '\(sortBy)' is not a metric") }
        if let heatmap, SummaryMetric(name: heatmap) == nil { throw ValidationError("--heatmap '\(heatmap)' is not a metric") }
        guard top >= 0 else { throw ValidationError("--top must be 0 or more, not \(top)") }
        guard (0...64).contains(detail) else { throw ValidationError("--detail must be 0...64 (the FULL results one call fetches), not \(detail)") }
        guard maxParallel >= 0 else { throw ValidationError("--max-parallel must be 0 or more, not \(maxParallel)") }
        try OutputFile.check(csv, flag: "--csv")
        try OutputFile.check(report, flag: "--report")
    }

    func run() async throws {
        let loaded = try input.load()
        let requested: [GridAxis]
        let base: Strategy
        do {
            // A range at the end of an axis goes to the server as a range, counted there rather
            // than sent value by value.
            requested = try grid.enumerated().map { (i, text) throws(BacktestError) -> GridAxis in
                // The i-th --grid is the call's run_batch.grid.axes[i].
                try GridAxis(parsing: text, field: FieldPath("run_batch.grid").child("axes", index: i).description, rangesExpanded: false)
            }
            base = loaded.file.strategy
        } catch {
            throw reportFailure(error)
        }
        let sweep = Grid(base: base, axes: requested)
        let total = sweep.count
        let metric = SummaryMetric(name: sortBy) ?? .sharpe
        let client = try connection.makeClient(timeout: deadline.duration)
        defer { Task { await client.close() } }
        // Ctrl-C cancels the batch on the server (CancelBatch), as `backtest batch` does.
        let interrupt = BatchInterrupt(client: client)
        defer { interrupt.remove() }
        var rows: [VariantResult] = []
        rows.reserveCapacity(total)
        var batchID = ""
        var stats: RunStatistics?
        let started = ContinuousClock.now
        let live = Terminal.stdoutIsTTY
        var lastDraw = ContinuousClock.now - .seconds(1)
        do {
            // SUMMARY whatever the size, as the README says (DEFAULT made a grid of 64 variants or
            // fewer FULL, where an invalid value fails its variant instead of the call).
            for try await update in client.runSweep(
                sweep, settings: loaded.settings, detail: .summary, maxParallel: maxParallel,
                timeout: deadline.duration, onBatchID: { interrupt.announce($0) }) {
                batchID = update.batchID
                rows += update.results
                if update.state == .final { stats = update.stats }
                let now = ContinuousClock.now
                if live, now - lastDraw > .milliseconds(100) || update.state == .final {
                    lastDraw = now
                    Terminal.write("\r" + Self.progressBar(done: rows.count, total: total, elapsed: now - started))
                }
            }
        } catch {
            if live { Terminal.write("\n") }
            if interrupt.wasInterrupted {
                printError("sweep interrupted: \(rows.count) of \(total) variants finished (batch \(batchID))")
                throw ExitCode(130)
            }
            throw reportFailure(error)
        }
        if live { Terminal.write("\n") }
        if interrupt.wasInterrupted, stats == nil {
            printError("sweep interrupted: \(rows.count) of \(total) variants finished (batch \(batchID))")
            throw ExitCode(130)
        }
        // The axes with their values listed, for the heatmap, the report and the CSV.
        let axes = (try? requested.map { GridAxis(path: $0.path, values: try $0.allValues(), zipGroup: $0.zipGroup) }) ?? requested
        let failures = Self.failureLines(rows)
        if !failures.isEmpty { printError(failures.joined(separator: "\n")) }
        guard rows.isEmpty || rows.contains(where: { $0.summary != nil }) else {
            printError("no variant ran: all \(rows.count) failed")
            throw ExitCode(1)
        }
        let elapsed = (ContinuousClock.now - started).milliseconds
        print("\(rows.count) variants in \(Format.milliseconds(elapsed)) (batch \(batchID))"
            + (stats.map { ", server \(Format.milliseconds($0.totalMs)), simulation \(Format.milliseconds($0.simulationMs))" } ?? ""))
        let ranked = Self.rank(rows, by: metric, top: top)
        print(Self.topTable(ranked[...], metric: metric).joined(separator: "\n"))
        if let heatmap, let heatMetric = SummaryMetric(name: heatmap) {
            print(Self.heatmap(rows, metric: heatMetric, axes: axes).joined(separator: "\n"))
        }
        if let report {
            var page = SweepHTMLReport(
                title: loaded.file.strategy.name.isEmpty ? "Sweep" : loaded.file.strategy.name, rows: rows, axes: axes,
                rankBy: metric, heatmapMetric: heatmap.flatMap { SummaryMetric(name: $0) } ?? metric)
            page.meta = "batch \(batchID), \(Format.milliseconds(elapsed))"
            do {
                try OutputFile.write(page.render(), to: report)
                print("HTML report written to \(report)")
            } catch {
                throw reportFailure(error)
            }
        }
        if let csv {
            do {
                try OutputFile.write(Self.csv(rows, axes: axes), to: csv)
                print("CSV of \(rows.count) summaries written to \(csv)")
            } catch {
                throw reportFailure(error)
            }
        }
        if detail > 0 {
            let full = try await client.variantResults(batchID: batchID, selection: .best(metric, count: detail))
            for result in full {
                guard case .full(let r) = result.detail else { continue }
                let label = result.parameters.map { "\($0.path)=\($0.value)" }.joined(separator: ", ")
                print("#\(result.index) \(label): \(r.dates.count) days, \(r.orders.count) orders, final equity \(Format.money(r.finalEquity))")
            }
        }
    }

    /// The variants' errors for standard error: a count line, then the first `limit` distinct
    /// errors (code, message, field path) with how many variants had each and the first
    /// variant's index. Empty when no variant failed.
    static func failureLines(_ rows: [VariantResult], limit: Int = 5) -> [String] {
        var order: [String] = []
        var counts: [String: (count: Int, first: Int)] = [:]
        for row in rows {
            guard row.summary == nil, let error = row.error else { continue }
            let text = BatchTableLayout.describe(error)
            if let seen = counts[text] {
                counts[text] = (seen.count + 1, min(seen.first, row.index))
            } else {
                order.append(text)
                counts[text] = (1, row.index)
            }
        }
        guard !order.isEmpty else { return [] }
        let failed = counts.values.reduce(0) { $0 + $1.count }
        var lines = ["\(failed) of \(rows.count) variants failed:"]
        for text in order.prefix(limit) {
            let entry = counts[text]!
            lines.append("  \(entry.count) × \(text) (first: variant #\(entry.first))")
        }
        if order.count > limit { lines.append("  … and \(order.count - limit) other errors") }
        return lines
    }

    /// "[#####.....] 5000/10000  12500/s  ETA 0.4 s"
    static func progressBar(done: Int, total: Int, elapsed: Duration) -> String {
        let width = 30
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        let filled = Int(fraction * Double(width))
        let seconds = max(elapsed.milliseconds / 1000, 1e-6)
        let rate = Double(done) / seconds
        let eta = rate > 0 ? Double(total - done) / rate : 0
        return "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
            + "\(done)/\(total)  \(Int(rate.rounded()))/s  ETA \(Format.milliseconds(eta * 1000))"
    }

    /// The variants with a summary, best first by `metric` (ties by index, NaN last). Sorts
    /// (value, position) keys, not the results themselves: copying 10,000 results around in a
    /// sort cost the CLI tens of milliseconds.
    static func rank(_ rows: [VariantResult], by metric: SummaryMetric, top: Int = .max) -> [(VariantResult, BacktestSummary)] {
        var keys: [(value: Double, index: Int, position: Int)] = []
        keys.reserveCapacity(rows.count)
        for (position, row) in rows.enumerated() {
            if let summary = row.summary { keys.append((metric.value(summary), row.index, position)) }
        }
        keys.sort { a, b in
            if a.value == b.value { return a.index < b.index }
            return metric.ranksBefore(a.value, b.value)
        }
        return keys.prefix(top).compactMap { key in rows[key.position].summary.map { (rows[key.position], $0) } }
    }

    static func topTable(_ ranked: ArraySlice<(VariantResult, BacktestSummary)>, metric: SummaryMetric) -> [String] {
        var lines = ["rank  index  \(metric.rawValue)  total_return  max_drawdown  trades  parameters"]
        for (rank, entry) in ranked.enumerated() {
            let (row, s) = entry
            let parameters = row.parameters.map { "\($0.path)=\($0.value)" }.joined(separator: ", ")
            let cells = [
                Format.padLeft("\(rank + 1)", 4), Format.padLeft("\(row.index)", 5), Format.padLeft(Format.number(metric.value(s)), 8),
                Format.padLeft(Format.percent(s.metrics.totalReturn), 12), Format.padLeft(Format.percent(s.metrics.maxDrawdown), 12),
                Format.padLeft("\(s.metrics.tradeCount)", 6),
            ]
            lines.append(cells.joined(separator: "  ") + "  " + parameters)
        }
        return lines
    }

    /// A two-axis grid as rows (first axis) by columns (second axis), each cell shaded by the
    /// metric's place between its worst and best value (`SweepHeatmap`).
    static func heatmap(_ rows: [VariantResult], metric: SummaryMetric, axes: [GridAxis]) -> [String] {
        guard let map = SweepHeatmap(rows, metric: metric, axes: axes) else { return ["(--heatmap needs a grid of exactly two axes)"] }
        return map.terminalLines()
    }

    /// One row per variant: index, each axis value, then the metrics, final equity and orders.
    static func csv(_ rows: [VariantResult], axes: [GridAxis]) -> String {
        let metrics = SummaryMetric.allCases
        var text = (["index"] + axes.map(\.path) + metrics.map(\.rawValue) + ["order_count", "error"]).joined(separator: ",") + "\n"
        for row in rows.sorted(by: { $0.index < $1.index }) {
            var fields = [String(row.index)] + row.parameters.map { "\"\($0.value.replacingOccurrences(of: "\"", with: "\"\""))\"" }
            if let s = row.summary {
                fields += metrics.map { "\($0.value(s))" } + [String(s.orderCount), ""]
            } else {
                fields += metrics.map { _ in "" } + ["", "\"\(row.error?.message.replacingOccurrences(of: "\"", with: "\"\"") ?? "")\""]
            }
            text += fields.joined(separator: ",") + "\n"
        }
        return text
    }
}
