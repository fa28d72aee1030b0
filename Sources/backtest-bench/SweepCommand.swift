import ArgumentParser
import BacktestBench
import BacktestCommandLine
import Foundation

/// `backtest-bench sweep`: issue 11's sweep targets other than the vectorbt comparison
/// (benchmarks/vectorbt-sweep.sh measures that one through the `backtest` CLI).
struct SweepTargetsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Measure the sweep targets: 10,000 and 100,000-variant grids, 256 batches then a disconnect, re-attach of 2,000 summaries, the batch of 8.",
        discussion: """
            Each case starts its own backtestd child (next to this binary, or --server-binary) on the shared CSV files \
            without Redis, so each peak RSS (VmHWM) is that case's. Build in release mode first: \
            swift build -c release --product backtest-bench --product backtestd
            """)

    @Option(help: "backtestd executable (default: next to this one).")
    var serverBinary: String?
    @Option(help: "Warm runs of the 10,000-variant grid (the batch of 8 runs 6x as many).")
    var runs = 5
    @Flag(help: "Print the rows as JSON.")
    var json = false

    func run() async throws {
        let binary = serverBinary.map { URL(fileURLWithPath: $0) }
            ?? URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
                .deletingLastPathComponent().appendingPathComponent("backtestd")
        var targets = SweepTargets(binary: binary)
        targets.runs = runs
        targets.progress = { printError("sweep: \($0)") }
        let loadBefore = Self.loadAverage()
        let rows: [SweepTargets.Row]
        do {
            rows = try await targets.run()
        } catch {
            throw reportFailure(error)
        }
        let loadAfter = Self.loadAverage()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(rows), as: UTF8.self))
            return
        }
        print("backtest-bench sweep, \(machineDescription()), \(ISO8601DateFormatter().string(from: Date()))")
        print("load average (1 min) \(loadBefore) before, \(loadAfter) after")
        print("| Measure | Target | Measured | Pass |")
        print("|---|---|---|---|")
        for row in rows { print("| \(row.measure) | \(row.target) | \(row.measured) | \(row.pass ? "yes" : "NO") |") }
        if rows.contains(where: { !$0.pass }) { throw ExitCode(1) }
    }

    static func loadAverage() -> String {
        ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "?").split(separator: " ").first.map(String.init) ?? "?"
    }
}
