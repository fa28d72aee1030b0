/// Keeps the requests of one process inside Alpaca's quota (200 per minute on the free plan,
/// across all of an account's clients) before sending them, rather than learning of the quota
/// from 429s: a 429 costs a request of the quota and a wait until the reset anyway, and a burst
/// of cold backtests would otherwise turn into a burst of 429s for every user at once.
///
/// A sliding window: a request may go when fewer than `limit` were sent in the last `window`
/// seconds; otherwise it waits until the oldest of them leaves the window. This is exactly
/// "at most `limit` in any window", unlike a token bucket whose burst plus refill allows up to
/// twice the limit in the first minute. Waiters are not queued: whoever wakes first after a slot
/// frees takes it, the others wait for the next one.
package actor RequestPacer {
    package nonisolated let limit: Int
    package nonisolated let window: Double
    private let environment: RetryEnvironment
    /// Send times inside the current window, oldest first (`head` skips the expired ones).
    private var sent: [Double] = []
    private var head = 0

    /// - Parameters:
    ///   - limit: requests allowed per window; 0 or less turns pacing off.
    ///   - window: seconds (Alpaca counts per minute).
    package init(limit: Int, window: Double = 60, environment: RetryEnvironment = .live) {
        self.limit = limit
        self.window = window
        self.environment = environment
    }

    /// Returns when a request may be sent now, and records it as sent. Returns the time waited.
    @discardableResult
    package func waitForSlot() async throws -> Double {
        guard limit > 0 else { return 0 }
        let started = environment.now()
        var waited = 0.0
        while true {
            // Never behind the time already waited: a clock that does not move (a test's) cannot
            // make this loop forever.
            let now = max(environment.now(), started + waited)
            while head < sent.count, sent[head] <= now - window { head += 1 }
            if head > 1024, head * 2 > sent.count {
                sent.removeFirst(head)
                head = 0
            }
            if sent.count - head < limit {
                sent.append(now)
                return waited
            }
            // The window is full: wait until its oldest send leaves it.
            let delay = max(0.001, sent[head] + window - now)
            try await environment.sleep(.seconds(delay))
            waited += delay
        }
    }
}
