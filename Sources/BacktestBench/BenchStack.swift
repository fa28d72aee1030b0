import BacktestTestSupport
import FakeAlpaca
import Foundation

/// Everything a benchmark runs against, on loopback: the fake Alpaca server in this process
/// (serving ../shared/market-data/daily with a per-request latency), a redis-server child
/// (or the Redis of `REDIS_URL`), and backtestd children pointed at both.
package final class BenchStack: @unchecked Sendable {
    package struct Options: Sendable {
        /// The backtestd executable; by default the one next to the running binary.
        package var serverBinary: URL
        /// Delay of every fake Alpaca response (Alpaca's own is 100-200 ms from a US data center).
        package var alpacaLatency: Duration = .milliseconds(150)
        /// Use this Redis (`redis://...`) instead of starting one; chaos cannot restart it then.
        package var redisURL: String?

        package init(serverBinary: URL, alpacaLatency: Duration = .milliseconds(150), redisURL: String? = nil) {
            self.serverBinary = serverBinary
            self.alpacaLatency = alpacaLatency
            self.redisURL = redisURL
        }

        /// `backtestd` beside this executable (/proc/self/exe on Linux, argv[0] elsewhere).
        package static func defaultServerBinary() -> URL {
            let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
            return URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent("backtestd")
        }
    }

    package let options: Options
    package let alpaca: FakeAlpacaServer
    /// nil when `REDIS_URL` points at an external Redis.
    package let redis: RedisServerProcess?
    private let lock = NSLock()
    private var servers: [ServerProcess] = []

    package static func start(_ options: Options) async throws -> BenchStack {
        guard FileManager.default.isExecutableFile(atPath: options.serverBinary.path) else {
            throw BenchError("no backtestd at \(options.serverBinary.path): build it (swift build -c release --product backtestd) or pass --server-binary")
        }
        guard FileManager.default.fileExists(atPath: SharedData.dailyDirectory.appendingPathComponent("SPY.csv").path) else {
            throw BenchError("no shared market data at \(SharedData.dailyDirectory.path): set BACKTESTD_SHARED")
        }
        let alpaca = try await FakeAlpacaServer.start(.init(dataDirectory: SharedData.dailyDirectory, latency: options.alpacaLatency))
        let redis: RedisServerProcess?
        do {
            redis = options.redisURL == nil ? try RedisServerProcess(owner: "redis-server (BacktestBench.BenchStack)") : nil
        } catch {
            try? await alpaca.shutdown()
            throw error
        }
        return BenchStack(options: options, alpaca: alpaca, redis: redis)
    }

    private init(options: Options, alpaca: FakeAlpacaServer, redis: RedisServerProcess?) {
        self.options = options
        self.alpaca = alpaca
        self.redis = redis
    }

    /// The server as it runs in production: Alpaca (the fake), Redis cache, new engine.
    package func launchServer(maxParallel: Int = 2) async throws -> ServerProcess {
        try await launch(label: "v2", [
            "BACKTESTD_MAX_PARALLEL": String(maxParallel),
            "USE_NEW_ENGINE": "true",
        ])
    }

    /// The reference path, standing in for the old system on the same machine: the reference
    /// engine, no cache, one symbol per Alpaca request, variants one after another.
    package func launchReferenceServer() async throws -> ServerProcess {
        try await launch(label: "reference", [
            "USE_NEW_ENGINE": "false",
            "BACKTESTD_CACHE": "off",
            "BACKTESTD_ALPACA_SYMBOLS_PER_REQUEST": "1",
            "BACKTESTD_MAX_PARALLEL": "1",
        ])
    }

    private func launch(label: String, _ extra: [String: String]) async throws -> ServerProcess {
        var environment = [
            "BACKTESTD_DATA_SOURCE": "alpaca",
            "APCA_API_DATA_URL": alpaca.baseURL,
            "APCA_API_KEY_ID": alpaca.configuration.keyID,
            "APCA_API_SECRET_KEY": alpaca.configuration.secretKey,
            "APCA_API_FEED": "sip",
            "BACKTESTD_LOG_LEVEL": "warning",
            // The fake has no quota: pacing to Alpaca's 200 requests per minute would measure
            // our own waiting, not the request path.
            "BACKTESTD_ALPACA_REQUESTS_PER_MINUTE": "0",
            // A prefix of our own, so a shared Redis never serves another run's entries.
            "BACKTESTD_CACHE_PREFIX": "bench-\(UUID().uuidString.prefix(8))",
        ]
        var removing: [String] = []
        if let redis {
            environment["BACKTESTD_REDIS_HOST"] = "127.0.0.1"
            environment["BACKTESTD_REDIS_PORT"] = String(redis.port)
            removing.append("REDIS_URL")
        } else if let url = options.redisURL {
            environment["REDIS_URL"] = url
        }
        environment.merge(extra) { $1 }
        let server = try await ServerProcess.launch(binary: options.serverBinary, environment: environment, removing: removing, label: label)
        lock.withLock { servers.append(server) }
        return server
    }

    /// Starts a stack (as `start`), runs `body` with it, and shuts it down however `body` ends.
    ///
    /// - Throws: what `start` throws, and whatever `body` throws.
    public static func with<R>(
        _ options: Options, isolation: isolated (any Actor)? = #isolation, _ body: (BenchStack) async throws -> R
    ) async throws -> R {
        let stack = try await start(options)
        do {
            let result = try await body(stack)
            await stack.shutdown()
            return result
        } catch {
            await stack.shutdown()
            throw error
        }
    }

    /// Stops every child, then the fake Alpaca.
    package func shutdown() async {
        for server in lock.withLock({ servers }) { await server.stop() }
        if let redis { await blocking { redis.stop() } }
        try? await alpaca.shutdown()
    }
}
