import BacktestClient
import BacktestCore
import BacktestModel
import BacktestTestSupport
import Foundation
import Testing

/// `backtest sweep` through the real executables (issue 11 item 6): a spawned backtestd on the
/// shared CSV files and the CLI as a user runs it: the top-N table, --csv with one row per
/// variant, --heatmap, --detail N and --report.
@Suite("backtest sweep, real executables", .serialized, .timeLimit(.minutes(5)))
struct SweepCommandLineTests {
    static let grid = ["--grid", "positions[0].entry.lhs=sma:5..9", "--grid", "positions[0].entry.rhs=sma:110..115"]

    /// `--timeout` is the sweep's deadline, as for `batch` (a tester could not set one): a
    /// millisecond ends the sweep with DEADLINE_EXCEEDED; a negative one is refused.
    @Test func sweepTakesATimeout() async throws {
        let daemon = try await SpawnedDaemon(owner: "SweepCommandLineTests timeout")
        defer { daemon.stop() }
        let run = try await daemon.runCLI(
            ["sweep", "benchmarks/sweep-aapl-sma.json"] + Self.grid + ["--timeout", "0.001"], owner: "SweepCommandLineTests timeout")
        #expect(run.status != 0)
        #expect(run.errors.contains("DEADLINE_EXCEEDED"), "\(run.output)\n\(run.errors)")
        let negative = try await daemon.runCLI(
            ["sweep", "benchmarks/sweep-aapl-sma.json"] + Self.grid + ["--timeout=-1"], owner: "SweepCommandLineTests timeout")
        #expect(negative.status != 0)
        #expect(negative.errors.contains("--timeout must be 0...1000000 seconds"), "\(negative.errors)")
    }

    /// `run` and `indicators` take `--timeout` as `batch` and `sweep` do (a tester's `run`
    /// against a server that stopped answering had no way to bound its wait).
    @Test func runAndIndicatorsTakeATimeout() async throws {
        let daemon = try await SpawnedDaemon(owner: "SweepCommandLineTests run timeout")
        defer { daemon.stop() }
        let run = try await daemon.runCLI(["run", "examples/strategies/sma-crossover.json", "--timeout", "0.001"], owner: "SweepCommandLineTests run timeout")
        #expect(run.status != 0)
        #expect(run.errors.contains("DEADLINE_EXCEEDED"), "\(run.output)\n\(run.errors)")
        let indicators = try await daemon.runCLI(
            ["indicators", "--ticker", "AAPL", "--series", "sma:20", "--timeout=-2"], owner: "SweepCommandLineTests run timeout")
        #expect(indicators.status != 0)
        #expect(indicators.errors.contains("--timeout must be 0...1000000 seconds"), "\(indicators.errors)")
        let answered = try await daemon.runCLI(
            ["run", "examples/strategies/sma-crossover.json", "--timeout", "60", "--json"], owner: "SweepCommandLineTests run timeout")
        #expect(answered.status == 0, "\(answered.errors)")
    }

    /// Numbers and output files are checked before anything runs, each with its own message (a
    /// tester: `--top -3` said "Missing value", `--detail 1000000` named --top, `--report DIR`
    /// said "NSCocoaErrorDomain error 512" after the backtest had run).
    @Test func flagsAreCheckedBeforeTheCallWithTheirOwnMessages() async throws {
        let daemon = try await SpawnedDaemon(owner: "SweepCommandLineTests flags")
        defer { daemon.stop() }
        let sweep = ["sweep", "benchmarks/sweep-aapl-sma.json"] + Self.grid
        let run = ["run", "examples/strategies/sma-crossover.json"]
        for (arguments, message) in [
            (sweep + ["--top", "-3"], "--top must be 0 or more, not -3"),
            (sweep + ["--detail", "1000000"], "--detail must be 0...64 (the FULL results one call fetches), not 1000000"),
            (sweep + ["--max-parallel", "-1"], "--max-parallel must be 0 or more, not -1"),
            (sweep + ["--csv", "/tmp"], "--csv '/tmp' is a directory: give a file path"),
            (run + ["--timeout", "-1"], "--timeout must be 0...1000000 seconds, not -1.0"),
            (run + ["--report", "/tmp"], "--report '/tmp' is a directory: give a file path, e.g. --report /tmp/out.html"),
            (run + ["--report", "/no/such/folder/r.html"], "--report '/no/such/folder/r.html': the folder '/no/such/folder' does not exist"),
        ] {
            let result = try await daemon.runCLI(arguments, owner: "SweepCommandLineTests flags")
            #expect(result.status == 64, "\(arguments): \(result.errors)")
            #expect(result.errors.contains(message), "\(arguments): \(result.errors)")
            #expect(!result.errors.contains("NSCocoaErrorDomain") && !result.errors.contains("Missing value"))
        }
    }

    @Test func sweepPrintsTheTopTableCSVHeatmapDetailAndReport() async throws {
        let daemon = try await SpawnedDaemon(owner: "SweepCommandLineTests top table")
        defer { daemon.stop() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sweep-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let csv = directory.appendingPathComponent("all.csv"), html = directory.appendingPathComponent("sweep.html")
        let run = try await daemon.runCLI(
            ["sweep", "benchmarks/sweep-aapl-sma.json"] + Self.grid
                + ["--top", "4", "--sort-by", "sharpe", "--heatmap", "sharpe", "--detail", "2", "--csv", csv.path, "--report", html.path],
            owner: "SweepCommandLineTests top table")
        #expect(run.status == 0, "\(run.output)\n\(run.errors)")
        let lines = run.output.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        // "30 variants in ... (batch <id>)"
        let summaryLine = try #require(lines.first { $0.hasPrefix("30 variants in ") }, "\(run.output)")
        let batchID = try #require(summaryLine.split(separator: "(batch ").last?.prefix(32))
        #expect(batchID.count == 32)
        // The top table: a header and 4 ranked rows, best sharpe first.
        let header = try #require(lines.firstIndex { $0.hasPrefix("rank  index  sharpe") }, "\(run.output)")
        let top = lines[(header + 1)...(header + 4)]
        #expect(top.enumerated().allSatisfy { $1.trimmingCharacters(in: .whitespaces).hasPrefix("\($0 + 1) ") }, "\(top)")
        #expect(top.allSatisfy { $0.contains("positions[0].entry.lhs=sma:") && $0.contains("positions[0].entry.rhs=sma:") })
        let sharpes = top.map { Double($0.split(separator: " ", omittingEmptySubsequences: true)[2]) ?? .nan }
        #expect(sharpes == sharpes.sorted(by: >), "\(sharpes)")
        // The heatmap: its header, then 5 rows (sma:5...9) of 6 cells (sma:110...115).
        let heat = try #require(lines.firstIndex { $0.hasPrefix("sharpe: rows positions[0].entry.lhs sma:5...sma:9") }, "\(run.output)")
        #expect(lines[(heat + 1)...(heat + 5)].allSatisfy { $0.count == 6 }, "\(lines[(heat + 1)...(heat + 5)])")
        // --csv: a header and one row per variant, in index order, each with its two axis values.
        let rows = try String(contentsOf: csv, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(rows.count == 1 + 30)
        #expect(rows.first?.hasPrefix("index,positions[0].entry.lhs,positions[0].entry.rhs,") == true)
        #expect(rows.dropFirst().enumerated().allSatisfy { $1.hasPrefix("\($0),") })
        #expect(rows[1].hasPrefix("0,\"sma:5\",\"sma:110\","), "\(rows[1])")
        #expect(rows[30].hasPrefix("29,\"sma:9\",\"sma:115\","), "\(rows[30])")
        // --detail 2: the FULL results of the best two, with their days and orders.
        let detail = lines.filter { $0.hasPrefix("#") && $0.contains(" days, ") && $0.contains(" orders, final equity ") }
        #expect(detail.count == 2, "\(run.output)")
        // --report: a self-contained page with the heatmap's 30 cells and the top table.
        let page = try String(contentsOf: html, encoding: .utf8)
        #expect(page.hasPrefix("<!DOCTYPE html>"))
        #expect(page.contains("<svg class=\"heatmap\""))
        #expect(page.components(separatedBy: "<rect x=").count - 1 >= 30)
        #expect(!page.contains("<script"))
    }

    @Test func aBadGridIsAClearErrorNamingTheAxis() async throws {
        let daemon = try await SpawnedDaemon(owner: "SweepCommandLineTests bad grid")
        defer { daemon.stop() }
        let run = try await daemon.runCLI(
            ["sweep", "benchmarks/sweep-aapl-sma.json", "--grid", "positions[0].entry.lhs=sma:9..5"],
            owner: "SweepCommandLineTests bad grid")
        #expect(run.status != 0)
        // The end is below the start: the CLI says so before sending, naming the axis as the call will.
        let text = run.output + run.errors
        #expect(text.contains("INVALID_ARGUMENT") && text.contains("'sma:9..5'") && text.contains("run_batch.grid.axes[0]"), "\(text)")
    }

    /// Ctrl-C (SIGINT) while the sweep runs: the CLI sends CancelBatch and exits 130, and the
    /// batch on the server ends CANCELLED with fewer variants than the grid (the daemon paces
    /// variants with --variant-delay-ms so the sweep is still running when the signal comes).
    @Test func ctrlCCancelsTheBatchOnTheServer() async throws {
        let daemon = try await SpawnedDaemon(arguments: ["--variant-delay-ms", "300"], owner: "SweepCommandLineTests ctrl-c")
        defer { daemon.stop() }
        let run = try await daemon.runCLI(
            ["sweep", "benchmarks/sweep-aapl-sma.json"] + Self.grid, owner: "SweepCommandLineTests ctrl-c",
            whileRunning: { pid in
                try? await Task.sleep(for: .seconds(3))
                kill(pid, SIGINT)
            })
        #expect(run.status == 130, "\(run.output)\n\(run.errors)")
        // "cancelling batch <id> (Ctrl-C again to quit at once)"
        let line = try #require(run.errors.split(separator: "\n").first { $0.hasPrefix("cancelling batch ") }, "\(run.errors)")
        let batchID = String(line.dropFirst("cancelling batch ".count).prefix(32))
        let client = BacktestClient(host: "127.0.0.1", port: daemon.port)
        defer { Task { await client.close() } }
        let status = try await client.batchStatus(id: batchID, timeout: .seconds(10))
        #expect(status.state == .cancelled, "\(status.state) \(status.completed)/\(status.total)")
        #expect(status.completed < status.total)
    }

    /// A sweep where every variant fails (risk sizing without a stop) prints the variants'
    /// errors, counted, with their field paths, and exits non-zero.
    /// The sweep asks for SUMMARY results whatever the grid's size (a new user's 3-variant grid
    /// came back FULL, so an invalid value failed its variant there and the call at 66 variants):
    /// an invalid value fails the call, naming the value.
    @Test func anInvalidValueFailsTheSweepNamingTheValue() async throws {
        let daemon = try await SpawnedDaemon(owner: "SweepCommandLineTests invalid value")
        defer { daemon.stop() }
        let run = try await daemon.runCLI(
            ["sweep", "benchmarks/sweep-aapl-sma.json", "--grid", "positions[0].sizing=risk"],
            owner: "SweepCommandLineTests invalid value")
        #expect(run.status != 0, "\(run.output)\n\(run.errors)")
        let text = run.output + run.errors
        #expect(text.contains("INVALID_ARGUMENT") && text.contains("run_batch.grid.axes[0].values[0]"), "\(text)")
    }

    /// A range at the end of an axis goes to the server as a range: a million values are counted
    /// and refused at once with what to change (a new user's were sent one by one, an 8.9 MB frame
    /// the connection refused, "frame payload of 8889178 bytes exceeds the limit").
    @Test func aLargeRangeIsCountedByTheServer() async throws {
        let daemon = try await SpawnedDaemon(owner: "SweepCommandLineTests large range")
        defer { daemon.stop() }
        let run = try await daemon.runCLI(
            ["sweep", "benchmarks/sweep-aapl-sma.json", "--grid", "name=n1..1000000", "--grid", "commission_bps=1,2"],
            owner: "SweepCommandLineTests large range")
        #expect(run.status != 0)
        let text = run.output + run.errors
        #expect(text.contains("the grid has 2000000 variants"), "\(text)")
        #expect(!text.contains("frame payload"), "\(text)")
    }
}
