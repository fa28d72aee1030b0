import BacktestCore
import BacktestTestSupport
import FakeAlpaca
import Foundation
import Synchronization
@testable import MarketData

/// Starts a fake Alpaca server over the shared CSV files for the duration of `body`.
func withFakeAlpaca<T>(
    latency: Duration = .zero, _ body: (FakeAlpacaServer) async throws -> T
) async throws -> T {
    let server = try await FakeAlpacaServer.start(.init(dataDirectory: SharedData.dailyDirectory, latency: latency))
    do {
        let result = try await body(server)
        try await server.shutdown()
        return result
    } catch {
        try? await server.shutdown()
        throw error
    }
}

/// Records the waits the retry loop asks for instead of waiting; the clock stands still at
/// `now` and "random" is always `unitRandom`.
/// A retry environment whose clock stands still at `now` and whose sleeps return at once,
/// remembering their lengths (in seconds, in `recorded`).
final class RecordingSleeper: Sendable {
    static let now = 1_700_000_000.0  // 2023-11-14T22:13:20Z
    let clock = ManualClock(unixSeconds: Int64(RecordingSleeper.now), onSleep: .returnAtOnce)
    let unitRandom: Double

    init(unitRandom: Double = 0.5) {
        self.unitRandom = unitRandom
    }

    var recorded: [Double] { clock.sleeps.map(\.seconds) }

    var environment: RetryEnvironment {
        RetryEnvironment(clock: clock, unitRandom: { [unitRandom] in unitRandom })
    }
}

/// An Alpaca provider pointed at `server`, with a clock that stands still (`sleeper`).
///
/// `requestTimeout` is long by default (a minute; the fetch budget, 25 s, still bounds each
/// attempt) so that no test's call count depends on how fast this machine is: the fake vendor
/// runs in the test process and builds its pages on the test machine's CPU, which other builds
/// may be loading heavily, and a page slower than the request timeout is timed out and asked
/// again — one more vendor call, as it should be for a stalled vendor ("an answer slower than the
/// request timeout costs one more vendor call"). Tests of timeouts pass their own, short one.
func makeAlpaca(
    _ server: FakeAlpacaServer, pageLimit: Int = 10_000, feed: String = "iex",
    retry: RetryPolicy = RetryPolicy(), requestTimeout: Duration = .seconds(60),
    keyID: String? = nil, secretKey: String? = nil, threads: Int = 2, sleeper: RecordingSleeper = RecordingSleeper()
) -> AlpacaProvider {
    let configuration = AlpacaConfiguration(
        keyID: keyID ?? server.configuration.keyID, secretKey: secretKey ?? server.configuration.secretKey,
        baseURL: server.baseURL, feed: feed, pageLimit: pageLimit,
        http: .init(connectTimeout: .seconds(2), requestTimeout: requestTimeout, maxConcurrentRequests: threads),
        retry: retry)
    return AlpacaProvider(configuration: configuration, retryEnvironment: sleeper.environment)
}

func filesProvider() throws -> LocalFilesProvider {
    try LocalFilesProvider(directory: SharedData.dailyDirectory)
}

func date(_ iso: String) -> TradingDate {
    TradingDate(iso: iso)!
}

extension DailyBars {
    /// Dates and OHLCV equal within `relative` tolerance (corporate-action columns ignored:
    /// Alpaca folds them into the prices and does not report them).
    func pricesEqual(_ other: DailyBars, relative: Double = 0) -> Bool {
        guard dates == other.dates else { return false }
        func near(_ a: [Double], _ b: [Double]) -> Bool {
            zip(a, b).allSatisfy { abs($0 - $1) <= relative * max(abs($0), abs($1)) }
        }
        return near(open, other.open) && near(high, other.high) && near(low, other.low)
            && near(close, other.close) && near(volume, other.volume)
    }
}
