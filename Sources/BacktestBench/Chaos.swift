import BacktestClient
import Foundation

/// `--chaos`: while the load runs, every `interval` the vendor and the cache misbehave:
///
/// 1. The fake Alpaca answers every request 429 for `rateLimitFor` (X-RateLimit-Reset at the
///    end), and the cache is purged so that the server really has to fetch, into the 429s.
/// 2. Half an interval later redis-server is stopped, left down for `redisDownFor`, started
///    again on the same port (empty: no persistence), and the cache is purged again.
///    Every other round is a **restart after purges** instead: two purges raise the
///    generation, Redis is restarted empty, and no purge follows. The server must move to a
///    fresh generation by itself and cache again; the round logs how long after Redis returned
///    the hit rate (from `ServerInfo.cache`, over 250 ms windows) is back above 95 %.
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
        var round = 0
        while await pause(interval / 2) {
            round += 1
            let afterPurges = round % 2 == 0
            let before = stack.alpaca.rateLimitedResponseCount
            stack.alpaca.rateLimit(for: rateLimitFor)
            log("fake Alpaca: 429 for every request for \(rateLimitFor)")
            await purge()
            guard await pause(interval / 2) else { break }
            log("fake Alpaca answered \(stack.alpaca.rateLimitedResponseCount - before) requests with 429")
            guard let redis = stack.redis else { continue }
            if afterPurges {
                await purge()
                await purge()
            }
            await blocking { redis.stop() }
            log("redis-server stopped")
            try? await Task.sleep(for: redisDownFor)
            do {
                try await blocking { try redis.start() }
                log("redis-server started again on port \(redis.port)\(afterPurges ? " (after purges; no purge follows)" : "")")
            } catch {
                log("redis-server failed to restart: \(error)")
            }
            if afterPurges {
                let limit = min(deadline, ContinuousClock.now + interval / 2)
                log(await recovery(control: control, until: limit))
            } else {
                await purge(attempts: 6)
            }
        }
        return events
    }

    /// Polls the server's cache figures every 250 ms until the hit rate over the last window is
    /// at least 95 % with Redis in use; describes when that happened (or that it did not).
    func recovery(control: BacktestClient, until limit: ContinuousClock.Instant) async -> String {
        let returned = ContinuousClock.now
        var last = try? await control.serverInfo(timeout: .seconds(2)).cache
        while ContinuousClock.now < limit {
            try? await Task.sleep(for: .milliseconds(250))
            guard let info = try? await control.serverInfo(timeout: .seconds(2)), let now = info.cache else { continue }
            defer { last = now }
            guard let before = last else { continue }
            let hits = now.hits - min(now.hits, before.hits)
            let misses = now.misses - min(now.misses, before.misses)
            guard hits + misses >= 20, info.cacheConnected else { continue }
            let rate = Double(hits) / Double(hits + misses)
            if rate >= 0.95 {
                return String(format: "hit rate back to %.1f%% (generation %llu) %.2f s after Redis returned",
                              rate * 100, info.cacheGeneration, (ContinuousClock.now - returned).milliseconds / 1000)
            }
        }
        return String(format: "hit rate NOT back above 95%% within %.1f s of Redis returning",
                      (ContinuousClock.now - returned).milliseconds / 1000)
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
