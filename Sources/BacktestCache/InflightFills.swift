import MarketData
import NIOConcurrencyHelpers

/// Coalesces identical source fetches that are in flight at the same time: concurrent requests
/// (from any client) missing the same range of the same symbols in the same generation wait for
/// one upstream call instead of each making their own.
///
/// An entry stays until the fetched months are written to Redis, so a request arriving in
/// between either joins the fetch or, once the entry is gone, finds the months cached: it never
/// makes a second call for data that is on its way.
final class InflightFills: Sendable {
    struct Key: Hashable, Sendable {
        var generation: Int64
        var source: String
        var query: BarQuery
    }

    private struct State {
        var fills: [Key: Task<BarSet, any Error>] = [:]
        /// Bumped whenever a fill's write-back completes.
        var completed: UInt64 = 0
    }

    /// Thrown by `fill` when no identical fetch is in flight but some fill completed since the
    /// caller's lookup: the data may be cached now, so the caller should look again.
    struct LookAgain: Error {}

    private let state = NIOLockedValueBox(State())

    /// Read before a lookup and passed to `fill`, closing the race "my lookup missed, then
    /// another request's fetch wrote the data and left before I checked for it".
    var completedFills: UInt64 { state.withLockedValue { $0.completed } }

    /// Returns the upstream answer for `key` and whether this caller made the call (the leader).
    /// The leader's `writeBack` runs after the answer is available; the entry is removed when
    /// it completes (or at once when the fetch failed: errors are never cached or shared later).
    func fill(
        _ key: Key, lookedUpAt epoch: UInt64?, fetch: @escaping @Sendable () async throws -> BarSet,
        writeBack: @escaping @Sendable (BarSet) async -> Void,
        schedule: (@escaping @Sendable () async -> Void) -> Void
    ) async throws -> (BarSet, isLeader: Bool) {
        let entry = state.withLockedValue { state -> (Task<BarSet, any Error>, Bool)? in
            if let existing = state.fills[key] { return (existing, false) }
            if let epoch, epoch != state.completed { return nil }
            let task = Task { try await fetch() }
            state.fills[key] = task
            return (task, true)
        }
        guard let (task, isLeader) = entry else { throw LookAgain() }
        guard isLeader else { return (try await task.value, false) }
        do {
            let answer = try await task.value
            schedule { [self] in
                await writeBack(answer)
                state.withLockedValue { state in
                    state.fills[key] = nil
                    state.completed &+= 1
                }
            }
            return (answer, true)
        } catch {
            _ = state.withLockedValue { $0.fills.removeValue(forKey: key) }
            throw error
        }
    }

    var count: Int { state.withLockedValue { $0.fills.count } }
}
