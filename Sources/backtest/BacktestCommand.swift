import ArgumentParser
import BacktestCore
import BacktestCommandLine

/// The backtest command-line client. Subcommands share `ConnectionOptions`; `run` and `batch`
/// slot in next to `info` and `ping`. `bench` and `loadtest` are `backtest-bench`'s, so this
/// executable links no fake servers or test support.
@main
struct BacktestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backtest",
        abstract: "Client for backtestd.",
        subcommands: [Run.self, BatchCommand.self, Info.self, Ping.self])
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
                print("ping \(index): \(client.host):\(client.port) \(Double(rtt.wholeMicroseconds) / 1000) ms")
            }
            await client.close()
        } catch {
            await client.close()
            throw reportFailure(error)
        }
    }
}
