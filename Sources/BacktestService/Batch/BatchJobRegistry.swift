import BacktestCore
import Synchronization

/// Batch jobs by id. Ids are 128 random bits from the system's CSPRNG, so a job is visible only
/// to requests that present its id.
///
/// Finished jobs are kept so clients can re-attach, and dropped when the first of two limits is
/// reached: `retention` after they finished, or, oldest first, when the finished jobs together
/// hold more than `maxRetainedBytes` of results. The byte bound is what keeps a busy server's
/// memory flat (a load test of 80 batches a second would otherwise keep ten minutes of equity
/// curves); under such load a job may be dropped before `retention`, and a late GetBatchStatus
/// gets NOT_FOUND. Running jobs are never dropped.
///
/// Expiry is swept on every create and lookup, from a queue the jobs fill as they finish, so it
/// costs nothing per job that has not expired and needs no timer.
package actor BatchJobRegistry {
    package nonisolated let retention: Duration
    package nonisolated let maxRetainedBytes: Int
    private var jobs: [String: BatchJob] = [:]
    private let finished: FinishedJobs

    package init(retention: Duration = .seconds(600), maxRetainedBytes: Int = 128 * 1024 * 1024) {
        self.retention = retention
        self.maxRetainedBytes = maxRetainedBytes
        self.finished = FinishedJobs()
    }

    package func create(total: Int) -> BatchJob {
        dropExpired()
        var id: String
        repeat { id = BatchJobRegistry.randomID() } while jobs[id] != nil
        let job = BatchJob(id: id, total: total, onFinish: { [finished, id] bytes in finished.add(id, bytes: bytes) })
        jobs[id] = job
        return job
    }

    /// The job, or NOT_FOUND (also for expired and malformed ids: which one is not revealed).
    package func job(id: String) throws(BacktestError) -> BatchJob {
        dropExpired()
        guard let job = jobs[id] else {
            throw BacktestError(.notFound, "no batch with id '\(id.prefix(64))' (unknown, or expired after \(retention))", field: "batch_id")
        }
        return job
    }

    package var count: Int { jobs.count }

    /// Bytes of results the finished jobs still hold (an estimate, see `BatchJob`).
    package nonisolated var retainedBytes: Int { finished.bytes }

    /// Drops finished jobs older than `retention`, then the oldest while over `maxRetainedBytes`.
    package func dropExpired(now: ContinuousClock.Instant = .now) {
        for id in finished.removeExpired(now: now, retention: retention, maxBytes: maxRetainedBytes) {
            jobs[id] = nil
        }
    }

    static func randomID() -> String {
        var generator = SystemRandomNumberGenerator()
        let words = [generator.next(), generator.next()] as [UInt64]
        return words.map { word in
            let hex = String(word, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
    }
}

/// Finished jobs in the order they finished, with their sizes. Filled synchronously from a job's
/// `finish` (a job may finish while the registry is busy), so it is a lock, not actor state.
final class FinishedJobs: Sendable {
    private struct Entry {
        let id: String
        let at: ContinuousClock.Instant
        let bytes: Int
    }

    private struct State {
        var entries: [Entry] = []
        var head = 0
        var bytes = 0
    }

    private let state = Mutex(State())

    var bytes: Int { state.withLock { $0.bytes } }

    func add(_ id: String, bytes: Int) {
        state.withLock { state in
            state.entries.append(Entry(id: id, at: .now, bytes: bytes))
            state.bytes += bytes
        }
    }

    func removeExpired(now: ContinuousClock.Instant, retention: Duration, maxBytes: Int) -> [String] {
        state.withLock { state in
            var removed: [String] = []
            while state.head < state.entries.count {
                let oldest = state.entries[state.head]
                guard oldest.at.duration(to: now) > retention || state.bytes > maxBytes else { break }
                removed.append(oldest.id)
                state.bytes -= oldest.bytes
                state.head += 1
            }
            if state.head > 256, state.head * 2 > state.entries.count {
                state.entries.removeFirst(state.head)
                state.head = 0
            }
            return removed
        }
    }
}
