import BacktestCache
import Foundation

/// A clock tests move by hand. `sleep(untilUnixSeconds:)` suspends until `advance(to:)` passes
/// the deadline; `nextSleep()` waits (by continuation, not polling) until someone sleeps.
final class ManualClock: CacheClock, @unchecked Sendable {
    private let lock = NSLock()
    private var now: Int64
    private var sleepers: [(deadline: Int64, continuation: CheckedContinuation<Void, any Error>)] = []
    private var sleepWatchers: [CheckedContinuation<Int64, Never>] = []
    private var unseenSleeps: [Int64] = []

    init(unixSeconds: Int64) { now = unixSeconds }

    func unixSeconds() -> Int64 { lock.withLock { now } }

    func set(unixSeconds: Int64) { lock.withLock { now = unixSeconds } }

    func sleep(untilUnixSeconds deadline: Int64) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let (ready, watcher) = lock.withLock { () -> (Bool, CheckedContinuation<Int64, Never>?) in
                if deadline <= now { return (true, nil) }
                sleepers.append((deadline, continuation))
                if sleepWatchers.isEmpty {
                    unseenSleeps.append(deadline)
                    return (false, nil)
                }
                return (false, sleepWatchers.removeFirst())
            }
            if ready { continuation.resume() }
            watcher?.resume(returning: deadline)
        }
    }

    /// The deadline of the next sleep that starts (or already started and was not yet reported).
    func nextSleep() async -> Int64 {
        await withCheckedContinuation { (continuation: CheckedContinuation<Int64, Never>) in
            let pending = lock.withLock { () -> Int64? in
                if !unseenSleeps.isEmpty { return unseenSleeps.removeFirst() }
                sleepWatchers.append(continuation)
                return nil
            }
            if let pending { continuation.resume(returning: pending) }
        }
    }

    /// Moves time to `unixSeconds` and wakes every sleeper whose deadline has come.
    func advance(to unixSeconds: Int64) {
        let due = lock.withLock { () -> [CheckedContinuation<Void, any Error>] in
            now = unixSeconds
            let due = sleepers.filter { $0.deadline <= unixSeconds }.map(\.continuation)
            sleepers.removeAll { $0.deadline <= unixSeconds }
            return due
        }
        for continuation in due { continuation.resume() }
    }

    /// Fails every sleeper (ends a scheduler's loop at the end of a test).
    func cancelSleepers() {
        let all = lock.withLock { () -> [CheckedContinuation<Void, any Error>] in
            defer { sleepers.removeAll() }
            return sleepers.map(\.continuation)
        }
        for continuation in all { continuation.resume(throwing: CancellationError()) }
    }
}
