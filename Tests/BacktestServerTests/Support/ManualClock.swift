import Synchronization

/// A clock that moves only when the test advances it, so code that sleeps on a schedule is
/// tested without waiting: the test learns of each sleep (`nextSleep()`) and decides when it
/// ends (`advance(by:)`).
final class ManualClock: Clock, Sendable {
    struct Instant: InstantProtocol {
        var offset: Duration
        func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        func duration(to other: Instant) -> Duration { other.offset - offset }
        static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
    }

    private struct Sleeper {
        let id: Int
        let deadline: Instant
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now = Instant(offset: .zero)
        var nextID = 0
        var sleepers: [Sleeper] = []
        /// Sleeps cancelled before they were registered.
        var cancelled: Set<Int> = []
        /// Requested sleep lengths not yet taken by `nextSleep()`, and who waits for one.
        var requests: [Duration] = []
        var requestWaiters: [(id: Int, continuation: CheckedContinuation<Duration, any Error>)] = []
    }

    private let state = Mutex(State())

    var now: Instant { state.withLock { $0.now } }
    var minimumResolution: Duration { .zero }

    func sleep(until deadline: Instant, tolerance: Duration?) async throws {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let (resumeNow, waiter, length) = state.withLock { state -> (Bool?, CheckedContinuation<Duration, any Error>?, Duration) in
                    if state.cancelled.remove(id) != nil { return (nil, nil, .zero) }
                    if deadline <= state.now { return (true, nil, .zero) }
                    state.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
                    let length = state.now.duration(to: deadline)
                    if state.requestWaiters.isEmpty {
                        state.requests.append(length)
                        return (false, nil, length)
                    }
                    return (false, state.requestWaiters.removeFirst().continuation, length)
                }
                switch resumeNow {
                case nil: continuation.resume(throwing: CancellationError())
                case true?: continuation.resume()
                case false?: break
                }
                waiter?.resume(returning: length)
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
    /// Cancellable, so `within(_:_:)` can bound the wait for a sleep that never comes.
    func nextSleep() async throws -> Duration {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Duration, any Error>) in
                let ready = state.withLock { state -> Result<Duration, any Error>? in
                    if state.cancelled.remove(id) != nil { return .failure(CancellationError()) }
                    if !state.requests.isEmpty { return .success(state.requests.removeFirst()) }
                    state.requestWaiters.append((id, continuation))
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Duration, any Error>? in
                guard let index = state.requestWaiters.firstIndex(where: { $0.id == id }) else {
                    state.cancelled.insert(id)
                    return nil
                }
                return state.requestWaiters.remove(at: index).continuation
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    /// Moves time on, waking every sleeper whose deadline passed.
    func advance(by duration: Duration) {
        let woken = state.withLock { state -> [Sleeper] in
            state.now = state.now.advanced(by: duration)
            let now = state.now
            let due = state.sleepers.filter { $0.deadline <= now }
            state.sleepers.removeAll { $0.deadline <= now }
            return due
        }
        for sleeper in woken { sleeper.continuation.resume() }
    }
}

/// Runs `body`, failing the test instead of hanging when the event it waits for never comes
/// (the wait must be cancellable). A safety net, not a synchronisation: tests wait on events, so
/// the limit is generous (a loaded machine running the whole suite in parallel can take seconds
/// to schedule the awaited task).
func within<T: Sendable>(_ what: String, limit: Duration = .seconds(30),
                         _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw TestFailure("\(what) did not happen within \(limit)")
        }
        return value
    }
}
