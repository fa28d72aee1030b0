import ArgumentParser
import BacktestClient
import BacktestCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The backtest command-line client. Subcommands share `ConnectionOptions`; `run`, `batch`,
/// `bench` and `loadtest` slot in next to `info` and `ping`.
@main
struct BacktestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backtest",
        abstract: "Client for backtestd.",
        subcommands: [Run.self, BatchCommand.self, Info.self, Ping.self, Bench.self, Loadtest.self])
}

struct ConnectionOptions: ParsableArguments {
    @Option(help: "Server host (env BACKTEST_HOST). Default 127.0.0.1.")
    var host: String?
    @Option(help: "Server port (env BACKTEST_PORT). Default 50051.")
    var port: Int?

    func makeClient() throws -> BacktestClient {
        let host = host ?? environment("BACKTEST_HOST") ?? "127.0.0.1"
        let portText = port.map(String.init) ?? environment("BACKTEST_PORT") ?? "50051"
        guard let port = Int(portText), (1...65535).contains(port) else {
            throw ValidationError("port must be 1...65535, not '\(portText)'")
        }
        return BacktestClient(host: host, port: port)
    }

    private func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
    }
}

/// Prints a BacktestError the way people read it and exits with a non-zero status.
func reportFailure(_ error: any Error) -> ExitCode {
    if let error = error as? BacktestError {
        printError("error: \(error.code): \(error.message)\(error.field.isEmpty ? "" : " (field \(error.field))")")
    } else {
        printError("error: \(error)")
    }
    return ExitCode(1)
}

func printError(_ text: String) {
    let line = text + "\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
}

struct Info: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show what the server runs (GetServerInfo) and its limits.")
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let client = try connection.makeClient()
        do {
            let info = try await client.serverInfo(timeout: .seconds(10))
            let settings = try await client.serverSettings()
            print("""
                server          \(client.host):\(client.port)
                version         \(info.serverVersion) (protocol \(info.protocolVersion))
                engine          \(info.engine)
                data source     \(info.dataSource)
                cache           \(info.cacheConnected ? "connected" : "not connected") (generation \(info.cacheGeneration))
                max parallel    \(info.maxParallel)
                uptime          \(Int(info.uptimeSeconds)) s
                limits          frame \(settings.maxFramePayload) B, \(settings.maxConcurrentStreams) streams, \
                call timeout \(settings.maxTimeoutMs) ms, idle \(settings.idleTimeoutMs) ms
                """)
            await client.close()
        } catch {
            await client.close()
            throw reportFailure(error)
        }
    }
}

struct Ping: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check connectivity: PING frames and their round-trip time.")
    @OptionGroup var connection: ConnectionOptions
    @Option(name: .shortAndLong, help: "Number of pings.")
    var count = 3

    func run() async throws {
        let client = try connection.makeClient()
        do {
            for index in 1...max(1, count) {
                let rtt = try await client.ping()
                let micros = rtt.components.seconds * 1_000_000 + rtt.components.attoseconds / 1_000_000_000_000
                print("ping \(index): \(client.host):\(client.port) \(Double(micros) / 1000) ms")
            }
            await client.close()
        } catch {
            await client.close()
            throw reportFailure(error)
        }
    }
}
