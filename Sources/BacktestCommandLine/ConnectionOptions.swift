import ArgumentParser
import BacktestClient
import BacktestCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// What `backtest` and `backtest-bench` share: where the server is and how a failure is printed.

/// `--host` and `--port`, falling back to BACKTEST_HOST and BACKTEST_PORT, then 127.0.0.1:50051.
package struct ConnectionOptions: ParsableArguments {
    @Option(help: "Server host (env BACKTEST_HOST). Default 127.0.0.1.")
    package var host: String?
    @Option(help: "Server port (env BACKTEST_PORT). Default 50051.")
    package var port: Int?

    package init() {}

    /// A client for the chosen server (not yet connected). With a call `timeout` shorter than the
    /// connect timeout (5 s, `BacktestClient.Configuration`), connecting and the handshake take at
    /// most that long too, and at least 1 s (a tester's `batch --timeout 2` against a silent peer
    /// waited 5 s).
    /// - Throws: `ValidationError` when the port is not in 1...65535.
    package func makeClient(timeout: Duration? = nil) throws -> BacktestClient {
        let (host, port) = try endpoint { name in getenv(name).map { String(cString: $0) } }
        var configuration = BacktestClient.Configuration()
        if let timeout, timeout > .zero, timeout < .seconds(5) {
            // At least a second: a 1 ms call must reach the server to end DEADLINE_EXCEEDED.
            configuration.connectTimeout = .milliseconds(max(1000, Int64(timeout / .milliseconds(1))))
        }
        return BacktestClient(host: host, port: port, configuration: configuration)
    }

    /// The host and port to use: the flags, else BACKTEST_HOST and BACKTEST_PORT (empty = unset),
    /// else 127.0.0.1:50051.
    /// - Throws: `ValidationError` naming `--port` or `BACKTEST_PORT` when the port is not in 1...65535.
    package func endpoint(environment: (String) -> String?) throws -> (host: String, port: Int) {
        func variable(_ name: String) -> String? { environment(name).flatMap { $0.isEmpty ? nil : $0 } }
        let host = host ?? variable("BACKTEST_HOST") ?? "127.0.0.1"
        let (portText, source): (String, String) =
            if let port { (String(port), "--port") } else if let text = variable("BACKTEST_PORT") { (text, "BACKTEST_PORT") } else { ("50051", "port") }
        guard let port = Int(portText), (1...65535).contains(port) else {
            let shown = String(portText.prefix(40)).debugDescription + (portText.count > 40 ? "..." : "")
            throw ValidationError("\(source): \(shown) is not a port; use an integer in 1...65535")
        }
        return (host, port)
    }
}

/// Prints a BacktestError the way people read it and returns a non-zero exit status to throw.
package func reportFailure(_ error: any Error) -> ExitCode {
    if let error = error as? BacktestError {
        printError("error: \(error.code): \(error.message)\(error.field.isEmpty ? "" : " (field \(error.field))")")
    } else {
        printError("error: \(error)")
    }
    return ExitCode(1)
}

/// Writes `text` and a newline to standard error, unbuffered.
package func printError(_ text: String) {
    let line = text + "\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
}
