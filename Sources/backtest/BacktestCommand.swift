import ArgumentParser
import BacktestCore
import BacktestCommandLine
import BacktestProtocol

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The backtest command-line client. Subcommands share `ConnectionOptions`; `run` and `batch`
/// slot in next to `info` and `ping`. `bench` and `loadtest` are `backtest-bench`'s, so this
/// executable links no fake servers or test support.
@main
struct BacktestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backtest",
        abstract: "Client for backtestd.",
        subcommands: [Run.self, BatchCommand.self, SweepCommand.self, IndicatorsCommand.self, Info.self, Ping.self, Purge.self])
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
                cache           \(Self.cacheState(info))
                \(info.cache.map(Self.cacheLines) ?? "")max parallel    \(info.maxParallel)
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

extension Info {
    /// "connected (generation N)", "not connected (generation N)" (Redis unreachable: the
    /// in-process layer still answers), or "off" for a server running without a cache (it sends
    /// no cache figures).
    static func cacheState(_ info: ServerInfo) -> String {
        guard info.cache != nil else { return "off (this server runs without a cache)" }
        return "\(info.cacheConnected ? "connected" : "not connected") (generation \(info.cacheGeneration))"
    }

    /// The cache's figures, one line each, for the info table (each line ends in a newline).
    static func cacheLines(_ cache: CacheStatsInfo) -> String {
        let rate = (cache.hitRate * 1000).rounded() / 10
        var lines = "cache lookups   \(cache.hits) hits, \(cache.misses) misses (\(rate)% hit rate), \(cache.rejectedValues) rejected values\n"
        lines += "cache size      \(cache.generationKeys) keys, \(cache.generationBytes) B written to Redis this generation; "
            + "in process \(cache.localEntries) entries, \(cache.localBytes) B\n"
        lines += "cache requests  \(cache.requests), \(cache.requestsWithoutRedis) without Redis\n"
        if cache.lastPurgeUnixSeconds > 0 {
            let ago = Int64(time(nil)) - cache.lastPurgeUnixSeconds
            lines += "last purge      \(cache.lastPurgeReason), \(ago) s ago, \(cache.lastPurgeRemoved) keys removed\n"
        } else {
            lines += "last purge      none since the server started\n"
        }
        return lines
    }
}

/// `backtest purge`: PurgeCache, the same purge as the 4 PM and 8 PM ones.
struct Purge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Purge the server's market-data cache now (PurgeCache): later requests fetch fresh data.")
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let client = try connection.makeClient()
        do {
            // A purge waits (up to 2 minutes) for requests still reading the old generation.
            let result = try await client.purgeCache(timeout: .seconds(180))
            print("cache purged: \(result.entriesRemoved) entries removed, generation \(result.generation)")
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
