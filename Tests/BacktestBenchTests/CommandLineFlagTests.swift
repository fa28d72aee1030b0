import BacktestBench
import Foundation
import Testing

/// The `backtest` executable's date flags and strategy-file checks (issue 12, failure 7), run as
/// a user runs it: the real binary (built beside this test bundle) against a backtestd child on
/// demo data.
@Suite(.serialized) struct CommandLineFlagTests {
    static var buildDirectory: URL { BenchStack.Options.defaultServerBinary().deletingLastPathComponent() }

    /// What one `backtest` run printed and its exit status.
    struct Run {
        var status: Int32
        var output: String
        var error: String
    }

    /// Runs `backtest arguments...` to its end.
    static func backtest(_ arguments: [String]) throws -> Run {
        let binary = buildDirectory.appendingPathComponent("backtest")
        try #require(FileManager.default.isExecutableFile(atPath: binary.path), "no \(binary.path): build with swift build --build-tests")
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        let output = Pipe()
        let error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        // Read before waiting, so a large output cannot fill the pipe and stall the child.
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, output: String(decoding: out, as: UTF8.self), error: String(decoding: err, as: UTF8.self))
    }

    /// A backtestd on demo data without a cache, for `body`.
    static func withServer(_ body: (ServerProcess) async throws -> Void) async throws {
        try await ServerProcess.with(
            binary: BenchStack.Options.defaultServerBinary(),
            environment: ["BACKTESTD_DATA_SOURCE": "demo", "BACKTESTD_CACHE": "off", "BACKTESTD_LOG_LEVEL": "warning"],
            removing: ["REDIS_URL"], label: "cli-flags", body)
    }

    /// A strategy file in a fresh directory; returns its path.
    static func strategyFile(_ json: String) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("backtest-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let file = directory.appendingPathComponent("strategy.json")
        try Data(json.utf8).write(to: file)
        return file.path
    }

    static func strategy(start: String? = "2019-01-02", end: String? = "2019-06-28", extra: String = "") -> String {
        let dates = [start.map { "\"start\": \"\($0)\"," }, end.map { "\"end\": \"\($0)\"," }].compactMap { $0 }.joined(separator: " ")
        return """
            {"name": "flags", \(dates) "benchmark": "SPY", \(extra)
             "positions": [{"ticker": "AAPL", "weight": 1.0, "entry": {"lhs": "sma:5", "op": ">", "rhs": "sma:20"}}]}
            """
    }

    /// "start"/"end" of `backtest run --json`'s output.
    static func simulatedRange(_ output: String) throws -> (String, String) {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        return (try #require(object["start"] as? String), try #require(object["end"] as? String))
    }

    @Test func theDateFlagsOverrideTheFilesDates() async throws {
        let file = try Self.strategyFile(Self.strategy())
        try await Self.withServer { server in
            let port = ["--port", "\(server.port)"]
            let own = try Self.backtest(["run", file, "--json"] + port)
            #expect(own.status == 0, "\(own.error)")
            #expect(try Self.simulatedRange(own.output) == ("2019-01-02", "2019-06-28"))

            let flagged = try Self.backtest(["run", file, "--start", "2018-01-02", "--end", "2018-12-31", "--json"] + port)
            #expect(flagged.status == 0, "\(flagged.error)")
            #expect(try Self.simulatedRange(flagged.output) == ("2018-01-02", "2018-12-31"))

            // One flag alone overrides its date only.
            let startOnly = try Self.backtest(["run", file, "--start", "2018-06-01", "--json"] + port)
            #expect(startOnly.status == 0, "\(startOnly.error)")
            #expect(try Self.simulatedRange(startOnly.output) == ("2018-06-01", "2019-06-28"))
        }
    }

    @Test func batchAndSweepTakeTheFlagsDatesToo() async throws {
        let file = try Self.strategyFile(Self.strategy())
        let same = try Self.strategyFile(Self.strategy(start: "2018-01-02", end: "2018-12-31"))
        try await Self.withServer { server in
            let port = ["--port", "\(server.port)"]
            func finalEquity(_ arguments: [String]) throws -> [Double] {
                let run = try Self.backtest(arguments + port)
                #expect(run.status == 0, "\(run.error)")
                let object = try #require(try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any])
                let variants = try #require(object["variants"] as? [[String: Any]])
                return variants.sorted { ($0["index"] as? Int ?? 0) < ($1["index"] as? Int ?? 0) }.compactMap { $0["final_equity"] as? Double }
            }
            let vary = ["--vary", "positions[0].weight=0.5,1", "--json"]
            let flagged = try finalEquity(["batch", file, "--start", "2018-01-02", "--end", "2018-12-31"] + vary)
            let written = try finalEquity(["batch", same] + vary)
            let own = try finalEquity(["batch", file] + vary)
            #expect(flagged.count == 2 && flagged == written, "\(flagged) vs \(written)")
            #expect(flagged != own)

            func sweepCSV(_ arguments: [String]) throws -> String {
                let csv = FileManager.default.temporaryDirectory.appendingPathComponent("sweep-\(UUID().uuidString).csv")
                let run = try Self.backtest(arguments + ["--grid", "positions[0].weight=0.5,1", "--csv", csv.path] + port)
                #expect(run.status == 0, "\(run.error)")
                return try String(contentsOf: csv, encoding: .utf8)
            }
            let sweepFlagged = try sweepCSV(["sweep", file, "--start", "2018-01-02", "--end", "2018-12-31"])
            #expect(sweepFlagged == (try sweepCSV(["sweep", same])))
            #expect(sweepFlagged != (try sweepCSV(["sweep", file])))
        }
    }

    /// Checked before any connection: no server needed.
    @Test(arguments: ["run", "batch", "sweep"])
    func aStartAfterTheEndExitsNonZeroNamingBoth(_ command: String) throws {
        let file = try Self.strategyFile(Self.strategy())
        let extra = switch command {
        case "sweep": ["--grid", "positions[0].weight=0.5,1"]
        case "batch": ["--vary", "positions[0].weight=0.5,1"]
        default: [String]()
        }
        let run = try Self.backtest([command, file, "--start", "2018-12-31", "--end", "2018-01-02", "--port", "1"] + extra)
        #expect(run.status != 0)
        #expect(run.error.contains("--start") && run.error.contains("--end"), "\(run.error)")
        #expect(run.error.contains("2018-12-31") && run.error.contains("2018-01-02"), "\(run.error)")

        // A flag after the file's other date: named as the flag and the file's key.
        let late = try Self.backtest([command, file, "--start", "2019-07-01", "--port", "1"] + extra)
        #expect(late.status != 0)
        #expect(late.error.contains("--start") && late.error.contains("\"end\" in"), "\(late.error)")
    }

    @Test func aKeyWrittenTwiceIsRejectedNamingItAndItsPath() throws {
        let top = try Self.strategyFile(Self.strategy(extra: "\"benchmark\": \"QQQ\","))
        let run = try Self.backtest(["run", top, "--port", "1"])
        #expect(run.status != 0)
        #expect(run.error.contains("'benchmark' twice") && run.error.contains("(field benchmark)"), "\(run.error)")

        let nested = try Self.strategyFile("""
            {"name": "dup", "start": "2019-01-02", "end": "2019-06-28",
             "positions": [{"ticker": "AAPL", "weight": 1.0, "entry": {"lhs": "sma:5", "op": ">", "rhs": "sma:20", "op": "<"}}]}
            """)
        let deep = try Self.backtest(["run", nested, "--port", "1"])
        #expect(deep.status != 0)
        #expect(deep.error.contains("'op' twice") && deep.error.contains("(field positions[0].entry.op)"), "\(deep.error)")
    }
}
