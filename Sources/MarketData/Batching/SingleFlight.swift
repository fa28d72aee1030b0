import Synchronization

/// Runs one operation per key at a time and hands its result to everyone who asked meanwhile:
/// the package's one single-flight, used by `CoalescingProvider` (identical provider queries)
/// and by the cache's `CachedMarketData` (identical upstream fills).
///
/// The operation runs in its own unstructured task, so a waiter that is cancelled stops
/// waiting (it gets `CancellationError` at once) without cancelling the work the other waiters
/// need. Errors are handed to the waiters of that flight only and never kept. Results are not
/// cached here either (caching is the cache layer's job), with one exception a cache needs:
///
/// - `settle`, when given, runs after a successful operation (its waiters already have the
///   value) and the key stays taken until it returns: a write-back to a cache settles, so a
///   caller arriving in between either joins the flight or, once it is gone, finds the data
///   cached, and never starts a second operation for data that is on its way.
/// - `completedFlights` counts the flights finished (and settled) successfully. A caller that
///   read it before looking in its cache passes it as `lookedUpAt`; when no identical flight is
///   running but one completed since, `run` throws `LookAgain` instead of starting the
///   operation (closing the race "my lookup missed, then another caller's flight wrote the data
///   and left before I asked").
package final class SingleFlight<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    /// Thrown by `run` when `lookedUpAt` is out of date: look in the cache again.
    package struct LookAgain: Error {}

    private struct State {
        var flights: [Key: Flight] = [:]
        var completed: UInt64 = 0
    }

    private let state = Mutex(State())

    package init() {}

    /// Flights that completed successfully (and settled) so far; see `run(_:lookedUpAt:...)`.
    package var completedFlights: UInt64 { state.withLock { $0.completed } }

    /// Flights in progress (including those still settling).
    package var count: Int { state.withLock { $0.flights.count } }

    /// The result of `operation` for `key`, from the flight in progress or a new one.
    /// - Parameters:
    ///   - lookedUpAt: `completedFlights` as read before the caller's own lookup, or nil to
    ///     start a flight regardless.
    ///   - settle: runs after success before the key is released (see the type).
    ///   - onLead: called at once, only for the caller that starts the flight, with a task that
    ///     ends when the flight has settled and released its key (to wait for it elsewhere).
    /// - Returns: the value and whether this caller started the flight (the leader).
    /// - Throws: the operation's error, `CancellationError` when the caller is cancelled while
    ///   waiting, or `LookAgain`.
    package func run(
        _ key: Key, lookedUpAt epoch: UInt64? = nil,
        settle: (@Sendable (Value) async -> Void)? = nil,
        onLead: ((Task<Void, Never>) -> Void)? = nil,
        _ operation: @escaping @Sendable () async throws -> Value
    ) async throws -> (value: Value, isLeader: Bool) {
        let joined = state.withLock { state -> (Flight, Bool)? in
            if let flight = state.flights[key] { return (flight, false) }
            if let epoch, epoch != state.completed { return nil }
            let flight = Flight()
            state.flights[key] = flight
            return (flight, true)
        }
        guard let (flight, isLeader) = joined else { throw LookAgain() }
        if isLeader {
            let task = Task {
                let result: Result<Value, any Error>
                do {
                    result = .success(try await operation())
                } catch {
                    result = .failure(error)
                }
                if case .success(let value) = result, let settle {
                    flight.finish(result)
                    await settle(value)
                    release(key, succeeded: true)
                } else {
                    release(key, succeeded: (try? result.get()) != nil)
                    flight.finish(result)
                }
            }
            onLead?(task)
        }
        return (try await flight.wait(), isLeader)
    }

    private func release(_ key: Key, succeeded: Bool) {
        state.withLock { state in
            state.flights[key] = nil
            if succeeded { state.completed &+= 1 }
        }
    }

    /// How many callers are waiting for `key` now (for tests that need a known interleaving).
    package func waiterCount(_ key: Key) -> Int {
        state.withLock { $0.flights[key] }?.waiterCount ?? 0
    }

    private final class Flight: Sendable {
        private struct State {
            var result: Result<Value, any Error>?
            var waiters: [Int: CheckedContinuation<Value, any Error>] = [:]
            var nextWaiter = 0
        }

        private let state = Mutex(State())

        var waiterCount: Int { state.withLock { $0.waiters.count } }

        func wait() async throws -> Value {
            let id = state.withLock { state in
                state.nextWaiter += 1
                return state.nextWaiter
            }
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    state.withLock { state in
                        if let result = state.result {
                            continuation.resume(with: result)
                        } else if Task.isCancelled {
                            continuation.resume(throwing: CancellationError())
                        } else {
                            state.waiters[id] = continuation
                        }
                    }
                }
            } onCancel: {
                state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(throwing: CancellationError())
            }
        }

        func finish(_ result: Result<Value, any Error>) {
            let waiters = state.withLock { state in
                state.result = result
                defer { state.waiters = [:] }
                return state.waiters
            }
            for continuation in waiters.values { continuation.resume(with: result) }
        }
    }
}
