import ArgumentParser
import BacktestBench
import Foundation

/// What `bench` and `loadtest --spawn` start on 127.0.0.1: a fake Alpaca with this latency, a
/// redis-server (or REDIS_URL's) and backtestd children from this binary.
struct StackOptions: ParsableArguments {
    @Option(help: "Latency of every fake Alpaca response, ms.")
    var alpacaLatencyMs = 150
    @Option(help: "backtestd executable (default: next to this one).")
    var serverBinary: String?

    /// `useRedisURL: false` starts a redis-server of our own even when REDIS_URL is set (chaos
    /// restarts it, which it cannot do to someone else's).
    var binary: URL { serverBinary.map { URL(fileURLWithPath: $0) } ?? BenchStack.Options.defaultServerBinary() }

    func start(useRedisURL: Bool = true) async throws -> BenchStack {
        let redisURL = useRedisURL ? ProcessInfo.processInfo.environment["REDIS_URL"].flatMap { $0.isEmpty ? nil : $0 } : nil
        return try await BenchStack.start(.init(serverBinary: binary, alpacaLatency: .milliseconds(alpacaLatencyMs), redisURL: redisURL))
    }
}
