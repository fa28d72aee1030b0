import BacktestClient
import BacktestTestSupport
import Foundation

/// A `backtestd` child process on a free loopback port, for the benchmarks.
///
/// Configured only through its environment (every backtestd flag has a BACKTESTD_* twin), with
/// the parent's environment underneath. Its standard error goes to a log file so a failed
/// start can be diagnosed; `peakResidentBytes` reads the kernel's high-water mark of its RSS.
///
/// The child is a `ChildProcess`: it is killed when this object is released and (on Linux) when
/// this process dies. `ServerProcess.with(...)` stops it however its body ends.
package final class ServerProcess: @unchecked Sendable {
    package let port: Int
    package let logFile: URL
    private let child: ChildProcess
    private var process: Process { child.process }

    /// Launches `binary` and waits (bounded, 20 s) until it answers GetServerInfo.
    package static func launch(binary: URL, environment overrides: [String: String], removing: [String] = [],
                              label: String) async throws -> ServerProcess {
        let port = try FreePort.loopback()
        var environment = ProcessInfo.processInfo.environment
        for name in removing { environment[name] = nil }
        environment.merge(overrides) { $1 }
        environment["BACKTESTD_HOST"] = "127.0.0.1"
        environment["BACKTESTD_PORT"] = String(port)
        let logFile = FileManager.default.temporaryDirectory.appendingPathComponent("backtestd-\(label)-\(port).log")
        _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
        let process = Process()
        process.executableURL = binary
        process.arguments = []
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: logFile)
        let child = try ChildProcess.launch(process, owner: "backtestd \(label) (BacktestBench.ServerProcess)")
        let server = ServerProcess(port: port, logFile: logFile, child: child)
        try await server.waitUntilServing()
        return server
    }

    /// Launches a server (as `launch`), runs `body` with it, and stops it however `body` ends.
    ///
    /// - Throws: what `launch` throws when the server does not start, and whatever `body` throws.
    package static func with<R>(
        binary: URL, environment overrides: [String: String], removing: [String] = [], label: String,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (ServerProcess) async throws -> R
    ) async throws -> R {
        let server = try await launch(binary: binary, environment: overrides, removing: removing, label: label)
        do {
            let result = try await body(server)
            await server.stop()
            return result
        } catch {
            await server.stop()
            throw error
        }
    }

    private init(port: Int, logFile: URL, child: ChildProcess) {
        self.port = port
        self.logFile = logFile
        self.child = child
    }

    package var pid: Int32 { child.pid }
    package var isRunning: Bool { process.isRunning }

    package func makeClient() -> BacktestClient {
        BacktestClient(host: "127.0.0.1", port: port)
    }

    /// VmHWM from /proc/PID/status: the most resident memory the process ever had.
    package var peakResidentBytes: Int? {
        ProcStatus.kilobytes("VmHWM", pid: pid).map { $0 * 1024 }
    }

    /// SIGTERM (graceful drain), then SIGKILL if it has not exited within 15 s; returns once the
    /// child has exited.
    package func stop() async {
        if process.isRunning {
            kill(pid, SIGTERM)
            let deadline = ContinuousClock.now + .seconds(15)
            while process.isRunning && ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        // Exited, or SIGKILLed now: reaps it either way.
        child.terminate(signal: nil, grace: .zero)
    }

    /// Polls GetServerInfo until it answers: the port is bound only once the server runs, and
    /// nothing else announces readiness. Bounded by a deadline and by the child's exit.
    private func waitUntilServing() async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            guard process.isRunning else { break }
            let client = makeClient()
            let info = try? await client.serverInfo(timeout: .seconds(2))
            await client.close()
            if info != nil { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        let log = (try? String(contentsOf: logFile, encoding: .utf8)) ?? ""
        child.terminate(signal: SIGKILL, grace: .zero)
        throw BenchError("backtestd did not start on port \(port) within 20 s; its log (\(logFile.path)):\n\(log.suffix(2000))")
    }
}

package struct BenchError: Error, CustomStringConvertible {
    package var description: String
    package init(_ description: String) { self.description = description }
}

/// Fields of /proc/PID/status (Linux); nil elsewhere or when the process is gone.
package enum ProcStatus {
    package static func kilobytes(_ field: String, pid: Int32) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        return parse(field, in: text)
    }

    /// "VmHWM:\t  123456 kB" -> 123456.
    package static func parse(_ field: String, in status: String) -> Int? {
        for line in status.split(separator: "\n") where line.hasPrefix(field + ":") {
            return line.dropFirst(field.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { Int($0) }
        }
        return nil
    }
}
