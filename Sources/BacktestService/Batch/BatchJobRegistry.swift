import BacktestCore
import BacktestModel
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// Batch jobs by id. Ids are 128 random bits from the system's CSPRNG, so a job is visible only
/// to requests that present its id.
///
/// Finished jobs are kept so clients can re-attach, and dropped when the first of two limits is
/// reached: `retention` after they finished, or, oldest first, when the finished jobs together
/// hold more than `maxRetainedBytes` of results. The byte bound is what keeps a busy server's
/// memory flat (a load test of 80 batches a second would otherwise keep ten minutes of equity
/// curves); under such load a job may be dropped before `retention`, and a late GetBatchStatus
/// gets NOT_FOUND. Running jobs are never dropped. A job whose FULL results push the finished
/// jobs over `maxRetainedBytes` keeps their summaries instead (GetVariantResults recomputes the
/// FULL results), so re-attach still reads every variant; NOT_FOUND says whether a job expired or
/// was evicted.
///
/// Expiry is swept on every create and lookup, from a queue the jobs fill as they finish, so it
/// costs nothing per job that has not expired and needs no timer.
package actor BatchJobRegistry {
    package nonisolated let retention: Duration
    package nonisolated let maxRetainedBytes: Int
    /// The server-wide budget for running and finished batches together, in the units of
    /// `BatchJob.estimatedBytes`: a batch whose estimate does not fit next to the running ones
    /// (finished ones are reduced to summaries and evicted first) waits in the admission queue
    /// until running batches finish; one larger than the whole budget is refused at once with
    /// RESOURCE_EXHAUSTED naming the budget.
    package nonisolated let budgetBytes: Int
    /// How many batches may wait for room at once; one more is refused with RESOURCE_EXHAUSTED.
    package nonisolated let maxQueued: Int
    /// Batches waiting for room, first come first served (a small batch never overtakes a large
    /// one that waits longer, so none starves).
    private var queue: [Waiter] = []
    /// Tickets of `admit` calls that wait or are about to, and those cancelled before their
    /// waiter was queued (a cancel racing the wait).
    private var liveTickets: Set<UInt64> = []
    private var cancelledTickets: Set<UInt64> = []
    private var nextTicket: UInt64 = 0

    private struct Waiter {
        let ticket: UInt64
        let owner: ObjectIdentifier?
        let total: Int
        let source: BatchSource
        let bytes: Int
        let continuation: CheckedContinuation<BatchJob, any Error>
    }
    /// When each owner (connection) last had a batch admitted, in admission counts: the queue's
    /// next batch is the oldest of the owner served longest ago.
    private var lastAdmitted: [ObjectIdentifier?: UInt64] = [:]
    private var admissions: UInt64 = 0
    private var jobs: [String: BatchJob] = [:]
    private let finished: FinishedJobs
    /// Bytes reserved by running jobs (their admission estimates, grown by results that outgrew
    /// them), by id; locked, since a job grows its own from its actor (`BatchJob.record`).
    private nonisolated let reserved = NIOLockedValueBox([String: Int]())
    /// Why recently dropped jobs are gone, for NOT_FOUND messages (bounded, oldest forgotten).
    private var gone: [String: Departure] = [:]
    private var goneOrder: [String] = []

    enum Departure {
        case expired
        case evicted(bytes: Int)
    }

    package init(retention: Duration = .seconds(600), maxRetainedBytes: Int = 128 * 1024 * 1024,
                 budgetBytes: Int = 192 * 1024 * 1024, maxQueued: Int = 64) {
        self.retention = retention
        self.maxRetainedBytes = maxRetainedBytes
        self.budgetBytes = max(budgetBytes, 1)
        self.maxQueued = max(0, maxQueued)
        self.finished = FinishedJobs()
    }

    /// Bytes reserved by running batches admitted through `admit`.
    package nonisolated var reservedBytes: Int { reserved.withLockedValue { $0.values.reduce(0, +) } }

    package func create(total: Int) -> BatchJob {
        dropExpired()
        return make(total: total, source: nil, reserving: 0)
    }

    private func make(total: Int, source: BatchSource?, reserving bytes: Int) -> BatchJob {
        var id: String
        repeat { id = BatchJobRegistry.randomID() } while jobs[id] != nil
        let maxRetained = maxRetainedBytes
        let budget = budgetBytes
        let job = BatchJob(id: id, total: total, source: source, reserved: bytes > 0 ? bytes : nil, grow: { [reserved, finished, id] extra in
            // Room next to the running batches and the finished ones kept (those are not reduced
            // for a running batch's growth: it keeps summaries instead).
            reserved.withLockedValue { reserved in
                guard reserved[id] != nil, reserved.values.reduce(0, +) + finished.bytes + extra <= budget else { return false }
                reserved[id, default: 0] += extra
                return true
            }
        }, onFinish: { [weak self, finished, id] kept in
            finished.add(id, bytes: kept)
            if let self { Task { await self.release(id) } }
            return finished.bytes > maxRetained
        }, onResize: { [finished, id] kept in finished.resize(id, bytes: kept) })
        jobs[id] = job
        if bytes > 0 { reserved.withLockedValue { $0[id] = bytes } }
        return job
    }

    /// Admits a batch estimated at `bytes` (results it will keep) within the budget: finished
    /// jobs' FULL results are reduced to summaries, then the oldest finished jobs evicted, to make
    /// room. When the running batches leave no room the batch waits in a first-come queue until
    /// enough of them finish, at most until `deadline`.
    ///
    /// - Throws: RESOURCE_EXHAUSTED naming the budget (field `run_batch`) when the batch alone is
    ///   larger than the budget, when `maxQueued` batches already wait, or when `deadline` passes
    ///   while it waits; CANCELLED when the call is cancelled (CANCEL, a lost connection) while it
    ///   waits: a waiting batch has no id yet, so nobody could re-attach to it.
    package func admit(total: Int, source: BatchSource, estimatedBytes bytes: Int,
                       deadline: NIODeadline = .distantFuture, owner: ObjectIdentifier? = nil) async throws(BacktestError) -> BatchJob {
        dropExpired()
        let needed = Self.megabytes(bytes)
        let budget = Self.megabytes(budgetBytes)
        try refuseIfOverBudget(total: total, detail: source.detail, bytes: bytes)
        // With others waiting, it queues unless it would be the next anyway (its owner was served
        // longer ago than theirs) and fits.
        if queue.isEmpty || isNext(owner: owner), await fits(bytes) {
            noteAdmitted(owner)
            return make(total: total, source: source, reserving: bytes)
        }
        guard queue.count < maxQueued else {
            throw BacktestError(.resourceExhausted,
                "the server's batch memory budget of \(budget) is in use by \(reserved.withLockedValue { $0.count }) running batches (\(Self.megabytes(reservedBytes))) and \(queue.count) batches already wait for room (the queue's limit); this batch needs about \(needed): retry later",
                field: "run_batch")
        }
        nextTicket += 1
        let ticket = nextTicket
        liveTickets.insert(ticket)
        defer { liveTickets.remove(ticket) }
        let timer: Task<Void, Never>? = deadline == .distantFuture ? nil : Task { [weak self] in
            try? await Task.sleep(for: .nanoseconds(max(0, (deadline - .now()).nanoseconds)))
            guard !Task.isCancelled else { return }
            await self?.expireWaiter(ticket, needed: needed)
        }
        defer {
            timer?.cancel()
            cancelledTickets.remove(ticket)
        }
        do {
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<BatchJob, any Error>) in
                    if cancelledTickets.remove(ticket) != nil {
                        continuation.resume(throwing: BacktestError(.cancelled, "the batch was cancelled while it waited for the server's batch memory budget", field: "run_batch"))
                        return
                    }
                    queue.append(Waiter(ticket: ticket, owner: owner, total: total, source: source, bytes: bytes, continuation: continuation))
                }
            } onCancel: {
                Task { [weak self] in await self?.cancelWaiter(ticket) }
            }
        } catch let error as BacktestError {
            throw error
        } catch {
            throw BacktestError(.cancelled, "the batch was cancelled while it waited for the server's batch memory budget", field: "run_batch")
        }
    }

    /// Batches waiting for room in the budget.
    package var queuedCount: Int { queue.count }

    /// Whether `bytes` fit next to the running batches once finished ones made room.
    private func fits(_ bytes: Int) async -> Bool {
        if reservedBytes + finished.bytes + bytes > budgetBytes {
            await makeRoom(budgetBytes - reservedBytes - bytes)
        }
        return reservedBytes + bytes <= budgetBytes
    }

    /// Admits waiting batches while the next one fits. The next is the oldest waiting batch of
    /// the owner (connection) whose last admission is oldest: round robin across connections,
    /// first come first served within one, and never a later batch past the next one that does
    /// not fit (so none starves). A fifth tester's three queued 1,000,000-variant grids on one
    /// connection kept another user's batch of 8 waiting 59 s in a first-come queue.
    private func admitWaiting() async {
        while let next = nextWaiter() {
            guard await fits(next.bytes) else { return }
            // The waiter may have been cancelled, or another become next, while `fits` waited on a job.
            guard let again = nextWaiter(), again.ticket == next.ticket, let i = queue.firstIndex(where: { $0.ticket == next.ticket }) else { continue }
            queue.remove(at: i)
            noteAdmitted(next.owner)
            next.continuation.resume(returning: make(total: next.total, source: next.source, reserving: next.bytes))
        }
    }

    /// The waiting batch to admit next (see `admitWaiting`).
    private func nextWaiter() -> Waiter? {
        queue.min { a, b in
            let (x, y) = (lastAdmitted[a.owner] ?? 0, lastAdmitted[b.owner] ?? 0)
            return x != y ? x < y : a.ticket < b.ticket
        }
    }

    /// Whether a batch of `owner` arriving now would come before every waiting one.
    private func isNext(owner: ObjectIdentifier?) -> Bool {
        guard let next = nextWaiter() else { return true }
        return (lastAdmitted[owner] ?? 0) < (lastAdmitted[next.owner] ?? 0)
    }

    private func noteAdmitted(_ owner: ObjectIdentifier?) {
        admissions += 1
        lastAdmitted[owner] = admissions
        // Forget owners long gone: the map stays as small as the owners seen recently.
        if lastAdmitted.count > 4_096 {
            let cutoff = admissions - 2_048
            lastAdmitted = lastAdmitted.filter { $0.value > cutoff }
        }
    }

    /// RESOURCE_EXHAUSTED (field `run_batch`) when a batch estimated at `bytes` is larger than
    /// the whole budget, saying what to change: SUMMARY detail for a FULL batch, fewer variants
    /// for a SUMMARY one (a tester's SUMMARY grid was told to ask for SUMMARY). Also called
    /// before a grid is resolved, from its size alone.
    package nonisolated func refuseIfOverBudget(total: Int, detail: ResultDetail, bytes: Int) throws(BacktestError) {
        guard bytes > budgetBytes else { return }
        let advice = detail == .summary ? "split it into batches of fewer variants" : "ask for SUMMARY detail or split it"
        throw BacktestError(.resourceExhausted,
            "the batch of \(total) variants needs about \(Self.megabytes(bytes)) of results, more than the server's batch memory budget of \(Self.megabytes(budgetBytes)); \(advice)",
            field: "run_batch")
    }

    private func cancelWaiter(_ ticket: UInt64) {
        guard let i = queue.firstIndex(where: { $0.ticket == ticket }) else {
            if liveTickets.contains(ticket) { cancelledTickets.insert(ticket) }
            return
        }
        queue.remove(at: i).continuation.resume(throwing: BacktestError(.cancelled,
            "the batch was cancelled while it waited for the server's batch memory budget", field: "run_batch"))
        Task { await admitWaiting() }
    }

    private func expireWaiter(_ ticket: UInt64, needed: String) {
        guard let i = queue.firstIndex(where: { $0.ticket == ticket }) else { return }
        let waiter = queue.remove(at: i)
        waiter.continuation.resume(throwing: BacktestError(.resourceExhausted,
            "the batch waited until its deadline for room in the server's batch memory budget of \(Self.megabytes(budgetBytes)) (\(reserved.withLockedValue { $0.count }) running batches hold \(Self.megabytes(reservedBytes)); this batch needs about \(needed))",
            field: "run_batch"))
        Task { await admitWaiting() }
    }

    static func megabytes(_ bytes: Int) -> String {
        "\((bytes + 524_288) / 1_048_576) MB"
    }

    private func release(_ id: String) async {
        reserved.withLockedValue { $0[id] = nil }
        if !queue.isEmpty { await admitWaiting() }
    }

    /// Shrinks finished jobs to at most `limit` bytes: FULL results become summaries, then the
    /// oldest jobs go.
    private func makeRoom(_ limit: Int) async {
        for id in finished.ids() where finished.bytes > limit {
            guard let job = jobs[id] else { continue }
            finished.resize(id, bytes: await job.downgradeToSummaries())
        }
        for id in finished.removeOldest(whileAbove: max(0, limit)) {
            note(id, .evicted(bytes: 0))
            jobs[id] = nil
        }
    }

    private func note(_ id: String, _ departure: Departure) {
        if gone.updateValue(departure, forKey: id) == nil { goneOrder.append(id) }
        if goneOrder.count > 100_000 {
            for old in goneOrder.prefix(50_000) { gone[old] = nil }
            goneOrder.removeFirst(50_000)
        }
    }

    /// The job, or NOT_FOUND saying whether the id expired (finished longer than `retention`
    /// ago), was evicted (to keep finished batches within the memory bounds), or is unknown.
    /// `field` names the id in the call ("get_batch_status.batch_id", "cancel_batch.batch_id", ...).
    package func job(id: String, field: String = "batch_id") throws(BacktestError) -> BatchJob {
        dropExpired()
        guard let job = jobs[id] else {
            let shown = quotedInput(id, limit: 64)
            switch gone[id] {
            case .expired?:
                throw BacktestError(.notFound, "batch \(shown) expired: finished batches are kept \(retention)", field: field)
            case .evicted?:
                throw BacktestError(.notFound,
                    "batch \(shown) was evicted before its retention ended, to keep finished batches within the server's memory bounds (\(maxRetainedBytes / 1_048_576) MB retained, \(budgetBytes / 1_048_576) MB budget)",
                    field: field)
            case nil:
                throw BacktestError(.notFound, "no batch with id \(shown) on this server (never known, or gone before it restarted)", field: field)
            }
        }
        return job
    }

    package var count: Int { jobs.count }

    /// The ids of the jobs held (running or finished and retained), in no particular order.
    package var ids: [String] { Array(jobs.keys) }

    /// Bytes of results the finished jobs still hold (an estimate, see `BatchJob`).
    package nonisolated var retainedBytes: Int { finished.bytes }

    /// Drops finished jobs older than `retention`, then the oldest while over `maxRetainedBytes`
    /// (the newest excepted, see `FinishedJobs.removeExpired`).
    package func dropExpired(now: ContinuousClock.Instant = .now) {
        for (id, expired) in finished.removeExpired(now: now, retention: retention, maxBytes: maxRetainedBytes) {
            note(id, expired ? .expired : .evicted(bytes: 0))
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

    /// Ids of the finished jobs still held, oldest first.
    func ids() -> [String] {
        state.withLock { state in state.entries[state.head...].map(\.id) }
    }

    /// Records a job's new size (after its FULL results became summaries).
    func resize(_ id: String, bytes: Int) {
        state.withLock { state in
            guard let i = state.entries[state.head...].firstIndex(where: { $0.id == id }) else { return }
            state.bytes += bytes - state.entries[i].bytes
            state.entries[i] = Entry(id: id, at: state.entries[i].at, bytes: bytes)
        }
    }

    /// Removes the oldest while the total is above `limit`.
    func removeOldest(whileAbove limit: Int) -> [String] {
        state.withLock { state in
            var removed: [String] = []
            while state.head < state.entries.count, state.bytes > limit {
                removed.append(state.entries[state.head].id)
                state.bytes -= state.entries[state.head].bytes
                state.head += 1
            }
            return removed
        }
    }

    /// Removes jobs past `retention` (true: expired) and then the oldest while over `maxBytes`
    /// (false: evicted), except the newest: it was admitted within the budget, and evicting it
    /// the moment it finished left a tester's 1,000,000-variant grid (176 MB of summaries over the
    /// 128 MB bound) unreadable, GetVariantResults by `best_by` included. It goes when a newer
    /// batch finishes, when admission needs its room, or when its retention ends.
    func removeExpired(now: ContinuousClock.Instant, retention: Duration, maxBytes: Int) -> [(String, Bool)] {
        state.withLock { state in
            var removed: [(String, Bool)] = []
            while state.head < state.entries.count {
                let oldest = state.entries[state.head]
                let expired = oldest.at.duration(to: now) > retention
                let newest = state.head == state.entries.count - 1
                guard expired || (state.bytes > maxBytes && !newest) else { break }
                removed.append((oldest.id, expired))
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
