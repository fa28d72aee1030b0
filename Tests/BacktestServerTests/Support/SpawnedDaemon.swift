import BacktestClient
import BacktestTestSupport
import Foundation

/// The real executables of this build (`backtestd`, `backtest`), next to the test bundle:
/// a spawned backtestd on the shared CSV files, and the CLI run against it.
final class SpawnedDaemon: @unchecked Sendable {
    let port: Int
    let child: ChildProcess
    var pid: Int32 { child.pid }

    /// The directory of this build's executables (`swift build --build-tests` builds them all).
    static var binDirectory: URL {
        get throws {
            let here = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
            var directory = URL(fileURLWithPath: here).deletingLastPathComponent()
            // On Linux the test runner is .build/debug/backtestdPackageTests.xctest (a file).
            while !FileManager.default.isExecutableFile(atPath: directory.appendingPathComponent("backtestd").path),
                  directory.pathComponents.count > 2 {
                directory.deleteLastPathComponent()
            }
            return directory
        }
    }

    static func executable(_ name: String) throws -> URL {
        let url = try binDirectory.appendingPathComponent(name)
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: url.path + " (build it with swift build --build-tests)"])
        }
        return url
    }

    /// Starts `backtestd` on a free loopback port, data from the shared CSV files, no Redis,
    /// plus `arguments`; returns once it answers GetServerInfo (bounded, 60 s).
    init(arguments: [String] = [], owner: String) async throws {
        port = try FreePort.loopback()
        let process = Process()
        process.executableURL = try Self.executable("backtestd")
        process.arguments = ["--host", "127.0.0.1", "--port", "\(port)", "--data-source", "files:\(SharedData.dailyDirectory.path)",
                             "--log-level", "warning"] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["BACKTESTD_CACHE"] = "off"
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        child = try ChildProcess.launch(process, owner: owner)
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            let client = BacktestClient(host: "127.0.0.1", port: port)
            do {
                _ = try await client.serverInfo(timeout: .seconds(5))
                await client.close()
                return
            } catch {
                await client.close()
                if ContinuousClock.now > deadline { throw error }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    func stop() {
        child.terminate()
    }

    /// A figure of /proc/PID/status in kibibytes ("VmHWM": the peak resident set, "VmRSS": now).
    func status(_ field: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            return Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "")
        }
        return nil
    }

    /// Runs `backtest ARGUMENTS --port PORT`; its exit status and standard output (standard error
    /// appended after a marker line). `whileRunning` runs with the CLI's process id once it started
    /// (to signal it, say); the answer waits for it too.
    func runCLI(_ arguments: [String], owner: String, whileRunning: (@Sendable (Int32) async -> Void)? = nil)
        async throws -> (status: Int32, output: String, errors: String) {
        let process = Process()
        process.executableURL = try Self.executable("backtest")
        process.arguments = arguments + ["--port", "\(port)"]
        process.currentDirectoryURL = SharedData.packageRoot
        var environment = ProcessInfo.processInfo.environment
        environment["NO_COLOR"] = "1"
        process.environment = environment
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = FileHandle.nullDevice
        let child = try ChildProcess.launch(process, owner: owner)
        let pid = child.pid
        let hook = Task { await whileRunning?(pid) }
        // Read on threads of their own: the pipes must drain while the CLI runs.
        async let out = Self.readAll(output)
        async let err = Self.readAll(errors)
        let (text, errorText) = await (out, err)
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                child.waitUntilExit()
                continuation.resume()
            }
        }
        await hook.value
        return (child.process.terminationStatus, text, errorText)
    }

    private static func readAll(_ pipe: Pipe) async -> String {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                continuation.resume(returning: String(decoding: data, as: UTF8.self))
            }
        }
    }
}
