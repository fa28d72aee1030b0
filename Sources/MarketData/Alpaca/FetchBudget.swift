import BacktestCore
import Synchronization

/// The time one vendor fetch may take, across every page, attempt and wait: from the start of
/// the fetch, `RetryPolicy.maxTotalWait`, and never past the call's deadline
/// (`FetchDeadline.current`, less a quarter second so the caller can still answer with a clear
/// UNAVAILABLE before the server's DEADLINE_EXCEEDED).
///
/// Elapsed time is measured on the continuous clock plus the waits that `RetryEnvironment.sleep`
/// was asked for but that did not advance it (tests inject a sleep that returns at once).
final class FetchBudget: Sendable {
    let limit: Duration
    let started: ContinuousClock.Instant
    /// The call's deadline less the margin; nil when the call has none.
    let deadline: ContinuousClock.Instant?
    private let unaccountedSleep = Mutex<Duration>(.zero)

    init(policy: RetryPolicy, deadline: ContinuousClock.Instant?, now: ContinuousClock.Instant = .now) {
        self.limit = policy.maxTotalWait
        self.started = now
        self.deadline = deadline.map { $0 - .milliseconds(250) }
    }

    var elapsed: Duration { ContinuousClock.now - started }

    /// What is left: of the budget, and before the deadline.
    var remaining: Duration {
        let now = ContinuousClock.now
        let spent = (now - started) + unaccountedSleep.withLock { $0 }
        var left = limit - spent
        if let deadline { left = min(left, deadline - now) }
        return left
    }

    /// Records a retry wait of `nominal` that took `measured` on the clock: the part the clock
    /// did not see counts against the budget too.
    func slept(_ nominal: Duration, measured: Duration) {
        if nominal > measured { unaccountedSleep.withLock { $0 += nominal - measured } }
    }

    /// True when the call's deadline, not the budget, is what ends the fetch.
    var deadlineIsTighter: Bool {
        guard let deadline else { return false }
        return deadline < started + limit
    }

    var describe: String {
        deadlineIsTighter
            ? "call's deadline (\(AlpacaProvider.format((deadline! - started).seconds)) s after the fetch began)"
            : "fetch budget of \(AlpacaProvider.format(limit.seconds)) s"
    }

    /// UNAVAILABLE naming the vendor, what was tried and why it stopped.
    func exhausted(vendor: String, attempts: Int, lastFailure: String?) -> BacktestError {
        let tried = attempts == 0 ? "no attempt could be made" : "\(attempts) attempt\(attempts == 1 ? "" : "s")"
        let cause = lastFailure.map { "; last error: \($0)" } ?? ""
        return BacktestError(.unavailable,
            "market data unavailable from \(vendor): no answer within the \(describe); \(tried) in \(AlpacaProvider.format(elapsed.seconds)) s\(cause)")
    }
}
