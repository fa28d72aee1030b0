import Synchronization

/// Runs one operation per key at a time and hands its result to everyone who asked meanwhile.
///
/// The operation runs in its own unstructured task, so a waiter that is cancelled stops
/// waiting (it gets `CancellationError` at once) without cancelling the work the other waiters
/// need. When the work finishes the key is forgotten: the next call starts afresh (results are
/// not cached here; caching is the cache layer's job).
final class SingleFlight<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private let flights = Mutex<[Key: Flight]>([:])

    func run(_ key: Key, _ operation: @escaping @Sendable () async throws -> Value) async throws -> Value {
        let (flight, isLeader) = flights.withLock { flights -> (Flight, Bool) in
            if let flight = flights[key] { return (flight, false) }
            let flight = Flight()
            flights[key] = flight
            return (flight, true)
        }
        if isLeader {
            Task {
                let result: Result<Value, any Error>
                do {
                    result = .success(try await operation())
                } catch {
                    result = .failure(error)
                }
                flights.withLock { _ = $0.removeValue(forKey: key) }
                flight.finish(result)
            }
        }
        return try await flight.wait()
    }

    /// How many callers are waiting for `key` now (for tests that need a known interleaving).
    func waiterCount(_ key: Key) -> Int {
        flights.withLock { $0[key] }?.waiterCount ?? 0
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
