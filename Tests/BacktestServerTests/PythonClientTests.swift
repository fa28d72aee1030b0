import Foundation
import Testing

/// The Python client in examples/python (protoc-generated messages, framing written from
/// PROTOCOL.md) round-trips real calls against an in-process server. Needs python3, protoc and the
/// protobuf 4.21 runtime (examples/python/requirements.txt); BACKTEST_SKIP_PYTHON=1 skips it.
@Suite("Python client", .timeLimit(.minutes(1)),
       .enabled(if: ProcessInfo.processInfo.environment["BACKTEST_SKIP_PYTHON"] != "1"))
struct PythonClientTests {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func pythonClientRoundTrips() async throws {
        try await withServer { _, port in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", Self.packageRoot.appendingPathComponent("examples/python/roundtrip_test.py").path,
                                 "--port", "\(port)"]
            let output = Pipe()
            process.standardOutput = output
            process.standardError = output
            try process.run()
            // Read on a thread of its own: the pipe must drain while the script runs.
            let text = await withCheckedContinuation { continuation in
                Thread.detachNewThread {
                    let data = output.fileHandleForReading.readDataToEndOfFile()
                    process.waitUntilExit()
                    continuation.resume(returning: String(decoding: data, as: UTF8.self))
                }
            }
            #expect(process.terminationStatus == 0, "python round trip failed:\n\(text)")
            #expect(text.contains("python round trip: OK"))
            #expect(text.contains("field run_backtest.settings.start_date"))
        }
    }
}
