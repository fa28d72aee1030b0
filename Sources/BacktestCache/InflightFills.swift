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

    private let fills = NIOLockedValueBox<[Key: Task<BarSet, any Error>]>([:])

    /// Returns the upstream answer for `key` and whether this caller made the call (the leader).
    /// The leader's `writeBack` runs after the answer is available; the entry is removed when
    /// it completes (or at once when the fetch failed: errors are never cached or shared later).
    func fill(
        _ key: Key, fetch: @escaping @Sendable () async throws -> BarSet,
        writeBack: @escaping @Sendable (BarSet) async -> Void,
        schedule: (@escaping @Sendable () async -> Void) -> Void
    ) async throws -> (BarSet, isLeader: Bool) {
        let (task, isLeader) = fills.withLockedValue { fills -> (Task<BarSet, any Error>, Bool) in
            if let existing = fills[key] { return (existing, false) }
            let task = Task { try await fetch() }
            fills[key] = task
            return (task, true)
        }
        guard isLeader else { return (try await task.value, false) }
        do {
            let answer = try await task.value
            schedule { [self] in
                await writeBack(answer)
                _ = fills.withLockedValue { $0.removeValue(forKey: key) }
            }
            return (answer, true)
        } catch {
            _ = fills.withLockedValue { $0.removeValue(forKey: key) }
            throw error
        }
    }

    var count: Int { fills.withLockedValue { $0.count } }
}
