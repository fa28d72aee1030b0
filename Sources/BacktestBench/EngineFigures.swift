import BacktestTestSupport
import Foundation

/// Engine-only throughput, from the `engine-bench` executable beside this one (`--json`): the
/// engine on in-memory shared data, no server, no network. Spawned rather than linked so the
/// figures are exactly the ones `swift run -c release engine-bench` prints.
package enum EngineFigures {
    package static func measure(binary: URL, runs: Int, variants: Int = 10_000) async throws -> [String: Double] {
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw BenchError("no engine-bench at \(binary.path) (swift build -c release --product engine-bench)")
        }
        let process = Process()
        process.executableURL = binary
        process.arguments = ["--json", "--runs", String(runs), "--variants", String(variants)]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        // A ChildProcess: engine-bench dies with us rather than running on for tens of seconds.
        let child = try ChildProcess.launch(process, owner: "engine-bench (BacktestBench.EngineFigures)")
        // Read on a GCD thread: the read blocks until engine-bench exits (tens of seconds).
        let data = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                let data = output.fileHandleForReading.readDataToEndOfFile()
                child.waitUntilExit()
                continuation.resume(returning: data)
            }
        }
        guard process.terminationStatus == 0 else { throw BenchError("engine-bench exited with status \(process.terminationStatus)") }
        return try parse(data)
    }

    /// The numeric fields of engine-bench's JSON, plus bars per second per core of the sweep.
    package static func parse(_ data: Data) throws -> [String: Double] {
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw BenchError("engine-bench did not print a JSON object")
        }
        var figures: [String: Double] = [:]
        for (key, value) in object {
            if let number = value as? NSNumber { figures[key] = number.doubleValue }
        }
        if let bars = figures["sweep_bars_per_second"], let threads = figures["parallelism"], threads > 0 {
            figures["sweep_bars_per_second_per_core"] = bars / min(threads, Double(ProcessInfo.processInfo.activeProcessorCount))
        }
        return figures
    }
}
