import BacktestCore
import BacktestModel
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// Batch jobs by id. Ids are 128 random bits from the system's CSPRNG, so a job is visible only
/// to requests that present its id.
///
/// Finished jobs are kept so clients can re-attach and rank them, for `retention` after they
/// finished. Their FULL results are kept while the finished jobs together hold at most
/// `maxRetainedBytes` (a job that would push them over keeps its summaries instead, and
/// GetVariantResults recomputes the FULL results), which keeps a busy server's memory flat (a
/// load test of 80 batches a second would otherwise keep ten minutes of equity curves).
/// Summaries go only when their retention ends or when admission needs their room in the budget
/// for a running batch, oldest first: a sixth tester's retained 1,000,000-variant grid (176 MB of
/// summaries, over the 128 MB bound alone) was evicted by the bound as soon as any other batch
/// finished, even one cancelled with no results, so on a busy server it could not be ranked for
/// long. Running jobs are never dropped; NOT_FOUND says whether a job expired or was evicted.
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
    /// The most the requests of waiting batches may hold together (`BatchSource.heldBytes`: the
    /// decoded variants or grid base, kept while they wait, outside the budget): a quarter of the
    /// budget; a batch that would push the queue over it is refused with RESOURCE_EXHAUSTED, unless
    /// the queue is empty (one waits whatever it holds). Why: a waiting batch has been decoded
    /// already, and 14 connections each sending a 4 MB grid over a 95,000-position base (about
    /// 45 MB decoded each) took the server to 680 MB while 9 of them waited.
    package nonisolated var maxQueuedBytes: Int { budgetBytes / 4 }
    /// What waiting batches hold (the sum of their `BatchSource.heldBytes`; at most `maxQueued`).
    private var queuedBytes: Int { queue.reduce(0) { $0 + $1.source.heldBytes } }
    /// Batches waiting for room, in round robin order across owners (`nextWaiter`); a later one
    /// starts ahead of the next only where that does not delay it (`mayGoAhead`).
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
        /// Its turn when its owner has had no batch admitted (`turn(of:arrival:)`).
        let arrival: UInt64
        let continuation: CheckedContinuation<BatchJob, any Error>
    }
    /// When each owner (connection) last had a batch admitted, in admission counts: the queue's
    /// next batch is the oldest of the owner served longest ago (`turn(of:arrival:)`).
    private var lastAdmitted: [ObjectIdentifier?: UInt64] = [:]
    private var admissions: UInt64 = 0
    /// Running batches that started ahead of a waiting one (`mayGoAhead`).
    private var wentAhead: Set<String> = []
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

    /// A job outside the budget (tests, callers that admit nothing); `owner` as in `admit`.
    package func create(total: Int, owner: ObjectIdentifier? = nil) -> BatchJob {
        dropExpired()
        return make(total: total, source: nil, reserving: 0, owner: owner)
    }

    private func make(total: Int, source: BatchSource?, reserving bytes: Int, owner: ObjectIdentifier?, ahead: Bool = false) -> BatchJob {
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
            finished.add(id, owner: owner, bytes: kept)
            if let self { Task { await self.release(id) } }
            return finished.bytes > maxRetained
        }, onResize: { [finished, id] kept in finished.resize(id, bytes: kept) })
        jobs[id] = job
        if bytes > 0 { reserved.withLockedValue { $0[id] = bytes } }
        if ahead { wentAhead.insert(id) }
        return job
    }

    /// Admits a batch estimated at `bytes` (results it will keep) within the budget: finished
    /// jobs' FULL results are reduced to summaries, then the oldest finished jobs evicted, to make
    /// room. When the running batches leave no room, or others wait and it may not go ahead of
    /// them, the batch waits in the queue (round robin across `owner`s, see `admitWaiting`) until
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
        // longer ago than theirs) and fits, or it can go ahead of the next one without delaying it.
        if queue.isEmpty || isNext(owner: owner), await fits(bytes) {
            noteAdmitted(owner)
            return make(total: total, source: source, reserving: bytes, owner: owner)
        }
        if await mayGoAhead(bytes) {
            noteAdmitted(owner)
            return make(total: total, source: source, reserving: bytes, owner: owner, ahead: true)
        }
        guard queue.count < maxQueued else {
            throw BacktestError(.resourceExhausted,
                "the server's batch memory budget of \(budget) is in use by \(reserved.withLockedValue { $0.count }) running batches (\(Self.megabytes(reservedBytes))) and \(queue.count) batches already wait for room (the queue's limit); this batch needs about \(needed): retry later",
                field: "run_batch")
        }
        guard queue.isEmpty || queuedBytes + source.heldBytes <= maxQueuedBytes else {
            throw BacktestError(.resourceExhausted,
                "the server's batch memory budget of \(budget) is in use by \(reserved.withLockedValue { $0.count }) running batches (\(Self.megabytes(reservedBytes))) and the \(queue.count) batches waiting for room hold \(Self.megabytes(queuedBytes)) of requests; this batch's request holds about \(Self.megabytes(source.heldBytes)), over the \(Self.megabytes(maxQueuedBytes)) that waiting batches may hold (a quarter of the budget): retry later",
                field: "run_batch")
        }
        nextTicket += 1
        let ticket = nextTicket
        liveTickets.insert(ticket)
        defer { liveTickets.remove(ticket) }
        // Refused a little before the deadline, so the call ends with this RESOURCE_EXHAUSTED
        // ("no room, retry") rather than its own DEADLINE_EXCEEDED, which won the race in 4 of a
        // hostile tester's 6 runs.
        let timer: Task<Void, Never>? = deadline == .distantFuture ? nil : Task { [weak self] in
            try? await Task.sleep(for: .nanoseconds(max(0, (deadline - .now()).nanoseconds - Self.refusalLead.nanoseconds)))
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
                    queue.append(Waiter(ticket: ticket, owner: owner, total: total, source: source, bytes: bytes,
                                        arrival: newcomerTurn, continuation: continuation))
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

    /// How long before its deadline a waiting batch is refused.
    static let refusalLead = TimeAmount.milliseconds(50)

    /// Whether `bytes` fit next to the running batches once finished ones made room.
    private func fits(_ bytes: Int) async -> Bool {
        if reservedBytes + finished.bytes + bytes > budgetBytes {
            await makeRoom(budgetBytes - reservedBytes - bytes)
        }
        return reservedBytes + bytes <= budgetBytes
    }

    /// Admits waiting batches while the next one fits, then those that may go ahead of it
    /// (`mayGoAhead`). The next is the oldest waiting batch of the owner (connection) whose last
    /// admission is oldest: round robin across connections, first come first served within one.
    /// A fifth tester's three queued 1,000,000-variant grids on one connection kept another user's
    /// batch of 8 waiting 59 s in a first-come queue; with the grids on three connections it still
    /// waited 59 s behind the two that did not fit, until going ahead was allowed.
    private func admitWaiting() async {
        while let next = nextWaiter() {
            guard await fits(next.bytes) else { break }
            // The waiter may have been cancelled, or another become next, while `fits` waited on a job.
            guard let again = nextWaiter(), again.ticket == next.ticket, let i = queue.firstIndex(where: { $0.ticket == next.ticket }) else { continue }
            admitQueued(at: i, ahead: false)
        }
        // The others, in the order they would be next, while the next one cannot start.
        var tried: Set<UInt64> = []
        while let head = nextWaiter(), let candidate = waitingInTurn().first(where: { $0.ticket != head.ticket && !tried.contains($0.ticket) }) {
            tried.insert(candidate.ticket)
            guard await mayGoAhead(candidate.bytes) else { continue }
            guard let i = queue.firstIndex(where: { $0.ticket == candidate.ticket }), nextWaiter()?.ticket != candidate.ticket else { continue }
            admitQueued(at: i, ahead: true)
        }
    }

    /// Takes waiter `i` out of the queue and admits it.
    private func admitQueued(at i: Int, ahead: Bool) {
        let waiter = queue.remove(at: i)
        noteAdmitted(waiter.owner)
        waiter.continuation.resume(returning: make(total: waiter.total, source: waiter.source, reserving: waiter.bytes, owner: waiter.owner, ahead: ahead))
    }

    /// Whether a batch of `bytes` may start ahead of the queue's next one: it fits now, and the
    /// next one could not start anyway because of batches that started in their turn (not ahead
    /// of it). That is backfilling as cluster schedulers do it (EASY backfilling): once the
    /// batches that started in turn no longer stand in the next one's way, nothing more goes
    /// ahead of it, so it waits at most for those that went ahead earlier and does not starve.
    /// Finished batches are not counted: they make room when it is needed.
    private func mayGoAhead(_ bytes: Int) async -> Bool {
        guard let head = nextWaiter() else { return false }
        let inTurn = reserved.withLockedValue { reserved in
            reserved.filter { !wentAhead.contains($0.key) }.values.reduce(0, +)
        }
        guard inTurn + head.bytes > budgetBytes else { return false }
        return await fits(bytes)
    }

    /// The waiting batches in the order `nextWaiter` would pick them.
    private func waitingInTurn() -> [Waiter] {
        queue.sorted(by: inTurn)
    }

    /// The waiting batch to admit next (see `admitWaiting`).
    private func nextWaiter() -> Waiter? {
        queue.min(by: inTurn)
    }

    /// Round robin order: the owner served longest ago first, then first come.
    private func inTurn(_ a: Waiter, _ b: Waiter) -> Bool {
        let (x, y) = (turn(of: a.owner, arrival: a.arrival), turn(of: b.owner, arrival: b.arrival))
        return x != y ? x < y : a.ticket < b.ticket
    }

    /// An owner's place in the round robin, in half admissions: twice its last admission, or for
    /// an owner with none (a new connection) its arrival, just before the latest admission then.
    /// A hostile tester's client opening a new connection per batch ranked as never served ahead
    /// of every connection that had been, and kept another client's batch waiting until its
    /// deadline.
    private func turn(of owner: ObjectIdentifier?, arrival: UInt64) -> UInt64 {
        lastAdmitted[owner].map { 2 * $0 } ?? arrival
    }

    /// The turn of a batch whose owner has none yet, arriving now.
    private var newcomerTurn: UInt64 { admissions == 0 ? 0 : 2 * admissions - 1 }

    /// Whether a batch of `owner` arriving now would come before every waiting one.
    private func isNext(owner: ObjectIdentifier?) -> Bool {
        guard let next = nextWaiter() else { return true }
        return turn(of: owner, arrival: newcomerTurn) < turn(of: next.owner, arrival: next.arrival)
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
        wentAhead.remove(id)
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
                    "batch \(shown) was evicted before its retention ended: running batches needed its room in the server's batch memory budget of \(budgetBytes / 1_048_576) MB",
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

    /// Drops finished jobs older than `retention`.
    package func dropExpired(now: ContinuousClock.Instant = .now) {
        for id in finished.removeExpired(now: now, retention: retention) {
            note(id, .expired)
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
///
/// Each owner's (connection's) newest finished job is the last to go when admission needs room.
final class FinishedJobs: Sendable {
    private struct Entry {
        let id: String
        let owner: ObjectIdentifier?
        let at: ContinuousClock.Instant
        var bytes: Int
    }

    private struct State {
        /// Oldest first; nil where a job was removed out of order.
        var entries: [Entry?] = []
        var head = 0
        var bytes = 0
        /// Each owner's newest finished job still held.
        var newest: [ObjectIdentifier?: String] = [:]

        mutating func remove(at i: Int) -> String {
            let entry = entries[i]!
            entries[i] = nil
            bytes -= entry.bytes
            if newest[entry.owner] == entry.id { newest[entry.owner] = nil }
            while head < entries.count, entries[head] == nil { head += 1 }
            if head > 256, head * 2 > entries.count {
                entries.removeFirst(head)
                head = 0
            }
            return entry.id
        }

        /// Removes, oldest first, the jobs `removable` accepts while the total is above `limit`.
        mutating func removeOldest(whileAbove limit: Int, where removable: (Entry) -> Bool) -> [String] {
            var removed: [String] = []
            var i = head
            while i < entries.count, bytes > limit {
                if let entry = entries[i], removable(entry) {
                    removed.append(remove(at: i))
                    i = max(i + 1, head)
                } else {
                    i += 1
                }
            }
            return removed
        }
    }

    private let state = Mutex(State())

    var bytes: Int { state.withLock { $0.bytes } }

    func add(_ id: String, owner: ObjectIdentifier? = nil, bytes: Int) {
        state.withLock { state in
            state.entries.append(Entry(id: id, owner: owner, at: .now, bytes: bytes))
            state.bytes += bytes
            state.newest[owner] = id
        }
    }

    /// Ids of the finished jobs still held, oldest first.
    func ids() -> [String] {
        state.withLock { state in state.entries[state.head...].compactMap { $0?.id } }
    }

    /// Records a job's new size (after its FULL results became summaries).
    func resize(_ id: String, bytes: Int) {
        state.withLock { state in
            guard let i = state.entries[state.head...].firstIndex(where: { $0?.id == id }) else { return }
            state.bytes += bytes - state.entries[i]!.bytes
            state.entries[i]!.bytes = bytes
        }
    }

    /// Removes the oldest while the total is above `limit`, for admission: first those that are
    /// not their owner's newest, then those.
    func removeOldest(whileAbove limit: Int) -> [String] {
        state.withLock { state in
            let newest = state.newest
            return state.removeOldest(whileAbove: limit) { newest[$0.owner] != $0.id }
                + state.removeOldest(whileAbove: limit) { _ in true }
        }
    }

    /// Removes the jobs that finished more than `retention` before `now`.
    func removeExpired(now: ContinuousClock.Instant, retention: Duration) -> [String] {
        state.withLock { state in
            var removed: [String] = []
            while state.head < state.entries.count, let oldest = state.entries[state.head], oldest.at.duration(to: now) > retention {
                removed.append(state.remove(at: state.head))
            }
            return removed
        }
    }
}
