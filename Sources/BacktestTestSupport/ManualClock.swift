import BacktestCore
import Synchronization

/// The one clock test double: a `WallClock` (so also a Swift `Clock<Duration>`) that moves only
/// when the test says so, so code that sleeps on a schedule, measures time or reads the date is
/// tested without waiting.
///
/// What a `sleep` does is chosen at creation:
/// - `.waitForAdvance` (default): it suspends until `advance(by:)`/`advance(toUnixSeconds:)`
///   passes its deadline. The test learns of each sleep with `nextSleep()` (its length) or
///   `nextSleepDeadline()` (its deadline) and decides when it ends; `cancelSleepers()` fails
///   the sleepers left. Task cancellation ends a sleep with `CancellationError`.
/// - `.advanceTime`: it moves time to its deadline and returns (time passes only by sleeping).
/// - `.returnAtOnce`: it returns at once and time stands still.
///
/// Every sleep's length is also kept in `sleeps`, in order.
package final class ManualClock: WallClock, Sendable {
    package typealias Instant = UnixInstant

    /// What a `sleep` does; see the type.
    package enum SleepBehaviour: Sendable {
        case waitForAdvance, advanceTime, returnAtOnce
    }

    private struct Sleeper {
        let id: Int
        let deadline: UnixInstant
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct Request {
        let length: Duration
        let deadline: UnixInstant
    }

    private struct State {
        var now: UnixInstant
        var nextID = 0
        var sleepers: [Sleeper] = []
        /// Sleeps and waits cancelled before they were registered.
        var cancelled: Set<Int> = []
        /// Sleeps not yet reported by `nextSleep()`, and who waits for one.
        var requests: [Request] = []
        var requestWaiters: [(id: Int, continuation: CheckedContinuation<Request, any Error>)] = []
        var sleeps: [Duration] = []
    }

    private let state: Mutex<State>
    private let behaviour: SleepBehaviour

    /// A clock at `unixSeconds` (default: the epoch; tests of durations need no date).
    package init(unixSeconds: Int64 = 0, onSleep behaviour: SleepBehaviour = .waitForAdvance) {
        state = Mutex(State(now: UnixInstant(unixSeconds: unixSeconds)))
        self.behaviour = behaviour
    }

    package var now: UnixInstant { state.withLock { $0.now } }
    package var minimumResolution: Duration { .zero }

    /// The length of every sleep so far, in order.
    package var sleeps: [Duration] { state.withLock { $0.sleeps } }

    package func sleep(until deadline: UnixInstant, tolerance: Duration? = nil) async throws {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            state.sleeps.append(state.now.duration(to: deadline))
            return state.nextID
        }
        switch behaviour {
        case .returnAtOnce:
            return
        case .advanceTime:
            state.withLock { $0.now = max($0.now, deadline) }
            return
        case .waitForAdvance:
            break
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let (resumeNow, waiter, request) = state.withLock {
                    state -> (Bool?, CheckedContinuation<Request, any Error>?, Request?) in
                    if state.cancelled.remove(id) != nil { return (nil, nil, nil) }
                    if deadline <= state.now { return (true, nil, nil) }
                    state.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
                    let request = Request(length: state.now.duration(to: deadline), deadline: deadline)
                    if state.requestWaiters.isEmpty {
                        state.requests.append(request)
                        return (false, nil, nil)
                    }
                    return (false, state.requestWaiters.removeFirst().continuation, request)
                }
                switch resumeNow {
                case nil: continuation.resume(throwing: CancellationError())
                case true?: continuation.resume()
                case false?: break
                }
                if let waiter, let request { waiter.resume(returning: request) }
            }
        } onCancel: {
            let sleeper = state.withLock { state -> Sleeper? in
                guard let index = state.sleepers.firstIndex(where: { $0.id == id }) else {
                    state.cancelled.insert(id)
                    return nil
                }
                return state.sleepers.remove(at: index)
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// The length of the next sleep someone starts (or started and nobody asked about yet).
    /// Cancellable, so a test can bound the wait for a sleep that never comes.
    package func nextSleep() async throws -> Duration {
        try await nextRequest().length
    }

    /// The deadline, in Unix seconds, of the next sleep someone starts (or started and nobody
    /// asked about yet). Cancellable.
    package func nextSleepDeadline() async throws -> Int64 {
        try await nextRequest().deadline.unixSeconds
    }

    private func nextRequest() async throws -> Request {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Request, any Error>) in
                let ready = state.withLock { state -> Result<Request, any Error>? in
                    if state.cancelled.remove(id) != nil { return .failure(CancellationError()) }
                    if !state.requests.isEmpty { return .success(state.requests.removeFirst()) }
                    state.requestWaiters.append((id, continuation))
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Request, any Error>? in
                guard let index = state.requestWaiters.firstIndex(where: { $0.id == id }) else {
                    state.cancelled.insert(id)
                    return nil
                }
                return state.requestWaiters.remove(at: index).continuation
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    /// Moves time on by `duration`, waking every sleeper whose deadline passed.
    package func advance(by duration: Duration) {
        move { $0.advanced(by: duration) }
    }

    /// Moves time to `unixSeconds`, waking every sleeper whose deadline passed.
    package func advance(toUnixSeconds unixSeconds: Int64) {
        move { _ in UnixInstant(unixSeconds: unixSeconds) }
    }

    private func move(_ next: (UnixInstant) -> UnixInstant) {
        let woken = state.withLock { state -> [Sleeper] in
            state.now = next(state.now)
            let now = state.now
            let due = state.sleepers.filter { $0.deadline <= now }
            state.sleepers.removeAll { $0.deadline <= now }
            return due
        }
        for sleeper in woken { sleeper.continuation.resume() }
    }

    /// Fails every sleeper with `CancellationError` (ends a scheduler's loop at the end of a test).
    package func cancelSleepers() {
        let all = state.withLock { state -> [Sleeper] in
            defer { state.sleepers.removeAll() }
            return state.sleepers
        }
        for sleeper in all { sleeper.continuation.resume(throwing: CancellationError()) }
    }
}
