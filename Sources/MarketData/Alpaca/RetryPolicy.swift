import BacktestCore
import Foundation

/// How Alpaca requests are retried: on 429, 5xx, timeouts and broken connections, with
/// exponential backoff and "full jitter" (a uniform wait in [0, min(maxDelay, base * 2^n)]),
/// which spreads out clients that failed together. A 429 that carries `X-RateLimit-Reset`
/// waits until that instant instead (plus up to one `baseDelay` of jitter), since retrying
/// earlier is certain to fail. Attempts are bounded, and so is the whole fetch: attempts and the
/// waits between them share one budget, `maxTotalWait` (25 s by default), never longer than the
/// call's deadline (`FetchDeadline`). Each attempt's timeout is cut to what is left of it, and
/// when the next wait would not fit the fetch fails now with UNAVAILABLE rather than hold a
/// backtest for minutes (a hung vendor used to cost 5 attempts × 30 s).
package struct RetryPolicy: Sendable {
    /// Requests in all, the first included (5 = one try and up to four retries).
    package var maxAttempts: Int
    package var baseDelay: Duration
    package var maxDelay: Duration
    /// The time budget of one fetch, across all its attempts and the waits between them.
    package var maxTotalWait: Duration

    package init(
        maxAttempts: Int = 5, baseDelay: Duration = .milliseconds(500), maxDelay: Duration = .seconds(20),
        maxTotalWait: Duration = .seconds(25)
    ) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.maxTotalWait = maxTotalWait
    }

    /// The wait before retry number `retry` (1 for the first retry). `resetAt` is the rate-limit
    /// reset instant (Unix seconds) when the failure was a 429 that carried one, `now` the
    /// current Unix time, `unitRandom` a uniform number in [0, 1).
    func delay(beforeRetry retry: Int, resetAt: Double?, now: Double, unitRandom: Double) -> Duration {
        let base = baseDelay.seconds
        if let resetAt, resetAt > now {
            return .seconds(resetAt - now + unitRandom * base)
        }
        let ceiling = min(maxDelay.seconds, base * pow(2, Double(retry - 1)))
        return .seconds(unitRandom * ceiling)
    }
}

/// Time and chance, injectable so retry tests decide without waiting or guessing: a `WallClock`
/// (BacktestTestSupport's `ManualClock` in tests) and a source of uniform random numbers.
package struct RetryEnvironment: Sendable {
    package var clock: any WallClock
    /// Uniform in [0, 1).
    package var unitRandom: @Sendable () -> Double

    package init(clock: any WallClock = SystemWallClock(), unitRandom: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }) {
        self.clock = clock
        self.unitRandom = unitRandom
    }

    /// Current Unix time in seconds (compared with `X-RateLimit-Reset`).
    package func now() -> Double { clock.now.unixTime }

    /// Waits `duration` on the clock; throws `CancellationError` when the task is cancelled.
    package func sleep(_ duration: Duration) async throws {
        try await clock.sleep(until: clock.now.advanced(by: duration), tolerance: nil)
    }

    package static let live = RetryEnvironment()
}
