import BacktestClient
import Foundation

/// `--chaos`: while the load runs, every `interval` the vendor and the cache misbehave:
///
/// 1. The fake Alpaca answers every request 429 for `rateLimitFor` (X-RateLimit-Reset at the
///    end), and the cache is purged so that the server really has to fetch, into the 429s.
/// 2. Half an interval later redis-server is stopped, left down for `redisDownFor`, started
///    again on the same port (empty: no persistence), and the cache is purged again.
///
/// Purges are best effort: one sent while Redis is down fails, which is itself a case the
/// server must survive. Redis is restarted only when the stack started it (not with REDIS_URL).
package struct Chaos: Sendable {
    package var interval: Duration = .seconds(10)
    package var rateLimitFor: Duration = .seconds(2)
    package var redisDownFor: Duration = .seconds(1)

    package init() {}

    /// Runs until `deadline`; returns a line per event, with its time since the start.
    package func run(stack: BenchStack, control: BacktestClient, until deadline: ContinuousClock.Instant) async -> [String] {
        let started = ContinuousClock.now
        var events: [String] = []
        func log(_ text: String) {
            events.append(String(format: "%6.1f s  %@", (ContinuousClock.now - started).milliseconds / 1000, text))
        }
        /// Right after a restart the server still backs off from Redis for a moment, so a
        /// purge is retried (up to `attempts`, 500 ms apart) until it goes through.
        func purge(attempts: Int = 1) async {
            for attempt in 1...attempts {
                do {
                    let result = try await control.purgeCache(timeout: .seconds(5))
                    log("purge: \(result.entriesRemoved) entries removed")
                    return
                } catch {
                    log("purge failed (attempt \(attempt)): \(error)")
                    if attempt < attempts { try? await Task.sleep(for: .milliseconds(500)) }
                }
            }
        }
        func pause(_ duration: Duration) async -> Bool {
            guard ContinuousClock.now + duration < deadline else { return false }
            try? await Task.sleep(for: duration)
            return true
        }
        while await pause(interval / 2) {
            let before = stack.alpaca.rateLimitedResponseCount
            stack.alpaca.rateLimit(for: rateLimitFor)
            log("fake Alpaca: 429 for every request for \(rateLimitFor)")
            await purge()
            guard await pause(interval / 2) else { break }
            log("fake Alpaca answered \(stack.alpaca.rateLimitedResponseCount - before) requests with 429")
            guard let redis = stack.redis else { continue }
            await blocking { redis.stop() }
            log("redis-server stopped")
            try? await Task.sleep(for: redisDownFor)
            do {
                try await blocking { try redis.start() }
                log("redis-server started again on port \(redis.port)")
            } catch {
                log("redis-server failed to restart: \(error)")
            }
            await purge(attempts: 6)
        }
        return events
    }
}

/// Runs a blocking call (process start/stop, waits) on a GCD thread, off Swift's cooperative pool.
func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
    }
}

func blocking(_ body: @escaping @Sendable () -> Void) async {
    await withCheckedContinuation { continuation in
        DispatchQueue.global().async {
            body()
            continuation.resume()
        }
    }
}
