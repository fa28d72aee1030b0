import BacktestCore
import Dispatch
#if canImport(Glibc)
import Glibc
#endif
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The threads that run the pipeline's CPU-bound work (simulations), so that it never occupies
/// Swift's cooperative thread pool.
///
/// Why: the cooperative pool has one thread per core (two on a 2-core machine) and is shared by
/// every task in the process: the server's call runners, batch streaming, re-attach polls,
/// the scheduled purge, the cache's probes. A simulation is synchronous and takes from
/// milliseconds to seconds; run on the cooperative pool, a batch of `maxParallel` of them holds
/// every cooperative thread for as long as the batch lasts (a 50-variant, 10-year batch: a
/// minute or more on two cores), and every other call's tasks wait for a free thread instead of
/// for the CPU. Here the work runs on ordinary threads, sized to the cores (`System.coreCount`,
/// which respects a container's CPU limit), which the OS time-slices with everything else; the
/// awaiting task is suspended and its cooperative thread free meanwhile.
///
/// Admission is fair across tenants (connections): work waiting for a thread is kept in one queue
/// per `ComputeTenant` (the task-local `ComputeThreads.tenant`, which the service sets to the
/// call's connection), and a thread that becomes free takes the next tenant's oldest work, round
/// robin. One connection with 256 heavy calls queued delays another connection's call by at most
/// one piece of work per thread, not by all 256.
///
/// Time slicing: admission alone would let work that runs for seconds (a 40,000-position
/// backtest, a large validation) hold a thread while short calls of other connections wait
/// behind it. So work that has run for `slice` while other work waits is asked to yield
/// (`CancellationFlag.requestYield()`): at its next check point, a few milliseconds apart, it
/// parks its thread, goes to the back of its tenant's queue of parked work, and the freed turn
/// goes to waiting work: work not started yet first, then parked work, each level round robin
/// across tenants (`Scheduler`); it resumes on the same thread when its turn comes. A call's later
/// pieces (a sweep's chunks after the first, a batch's variants after its first round) are
/// submitted `continuing`: they wait with parked work, not before it, so a tenant whose long work
/// comes in pieces takes turns with the others' parked work instead of overtaking it (a tester's
/// eight connections looping 50,000-variant grids: two finished 18 grids in 30 s, another one
/// grid in 32 s, its work parked behind the others' fresh chunks). At most
/// `numberOfThreads` pieces run at once; up to `maxParked` more may be parked (each keeps the
/// memory it holds, so the bound keeps that in check; with all parking places taken, running
/// work simply continues). Work that reaches neither `check()` nor `CancellationFlag.yieldPoint()`
/// is not sliced.
///
/// Cancellation: work still queued when its task is cancelled does not start and the await
/// throws `CancellationError`. Work already running is told through its `CancellationFlag`
/// (`run(cancellable:)`), which the engine checks every few milliseconds, and stops early; parked
/// work is woken at once to stop.
///
/// Not for blocking I/O (hiredis and curl have their own threads): a thread here waiting on I/O
/// is a core's worth of simulations not run.
package final class ComputeThreads: Sendable {
    /// The process's threads for CPU-bound pipeline work: one per core, started on first use and
    /// never stopped (like NIO's singletons).
    package static let shared = ComputeThreads(numberOfThreads: System.coreCount)

    /// Whose work the current task submits: the service sets it to the call's connection, so
    /// admission is fair between connections. Work without one shares `ComputeTenant.unattributed`.
    @TaskLocal package static var tenant = ComputeTenant.unattributed

    /// How long work runs before it is asked to yield to waiting work: 5 ms, short against the
    /// 15 ms p99 of a single backtest under load (README) and long against a thread switch (µs).
    package static let defaultSlice: Duration = .milliseconds(5)

    private let pool: NIOThreadPool
    private let state: NIOLockedValueBox<Scheduler>
    private let slice: TimeAmount
    private let timerLoop: any EventLoop

    /// Starts `numberOfThreads` threads (at least one) that run work, plus `maxParked` (default:
    /// twice `numberOfThreads`) for work parked by time slicing; `slice` is how long work runs
    /// before it yields to waiting work. An instance other than `shared` must be `shutdown()`
    /// before it is released.
    package init(numberOfThreads: Int, maxParked: Int? = nil, slice: Duration = ComputeThreads.defaultSlice) {
        let threads = max(1, numberOfThreads)
        let parked = max(0, maxParked ?? 2 * threads)
        pool = NIOThreadPool(numberOfThreads: threads + parked)
        state = NIOLockedValueBox(Scheduler(capacity: threads, maxParked: parked))
        self.slice = .nanoseconds(Int64(slice.components.seconds) * 1_000_000_000 + slice.components.attoseconds / 1_000_000_000)
        timerLoop = MultiThreadedEventLoopGroup.singleton.next()
        pool.start()
    }

    /// The number of pieces of work that run at once.
    package var numberOfThreads: Int { state.withLockedValue { $0.capacity } }

    /// Runs `work` on one of the threads and returns its value; the calling task is suspended
    /// meanwhile. Throws `CancellationError` when the task is cancelled before `work` started.
    /// `work` has no flag of its own: it is time-sliced only at `CancellationFlag.yieldPoint()`s
    /// (request decoding has them), which see the job's flag as this thread's `current`.
    package func run<Value: Sendable>(_ work: @escaping @Sendable () -> Value) async throws -> Value {
        try await run(cancellable: { _ in work() })
    }

    /// Runs `work` on one of the threads and returns its value; the flag passed to `work` is set
    /// when the calling task is cancelled while `work` runs, so `work` can stop early (it checks
    /// the flag; see `CancellationFlag`), and its `check()` is where `work` yields to waiting work
    /// after each time slice. Throws `CancellationError` when the task is cancelled before `work`
    /// started, and `NIOThreadPoolError.ThreadPoolInactive` after `shutdown()`.
    ///
    /// `continuing`: the work is a later piece of work that already had turns (the next chunk of
    /// a sweep): it waits with parked work rather than before it.
    package func run<Value: Sendable>(
        continuing: Bool = false, cancellable work: @escaping @Sendable (CancellationFlag) -> Value
    ) async throws -> Value {
        try Task.checkCancellation()
        let flag = CancellationFlag()
        let tenant = ComputeThreads.tenant
        let id = state.withLockedValue { $0.newID() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Value, any Error>) in
                let job = Job(
                    id: id, tenant: tenant, flag: flag, continuing: continuing,
                    body: { [self] job in
                        job.flag.setYieldHandler { [self] in yield(job) }
                        let value = CancellationFlag.withCurrent(job.flag) { work(job.flag) }
                        job.flag.setYieldHandler(nil)
                        state.withLockedValue { $0.finished(stoppedEarly: job.flag.wasObserved) }
                        continuation.resume(returning: value)
                    },
                    abandon: { continuation.resume(throwing: $0) })
                submit(job)
            }
        } onCancel: {
            // Set before the lock is taken: `submit` and `dispatch` check it under the lock.
            flag.cancel()
            let outcome = state.withLockedValue { $0.cancel(id: id, tenant: tenant) }
            switch outcome {
            case .removed(let job): job.abandon(CancellationError())
            case .woken(let job): job.wake()
            case .none: break
            }
        }
    }

    /// Counts since the threads started, for tests and metrics: pieces of work started, finished,
    /// and finished early because they saw their cancellation flag; work waiting for a thread;
    /// work parked now; and how many times work yielded its thread.
    package var counts: Counts {
        state.withLockedValue {
            Counts(started: $0.started, finished: $0.finishedCount, stoppedEarly: $0.stoppedEarly, queued: $0.queuedCount,
                   parked: $0.parked, yields: $0.yields)
        }
    }

    /// See `counts`.
    package struct Counts: Sendable, Equatable {
        package var started: Int
        package var finished: Int
        package var stoppedEarly: Int
        /// Work not started yet, waiting for its turn.
        package var queued: Int
        /// Work that yielded and waits for its next turn.
        package var parked: Int
        /// Times work yielded its thread.
        package var yields: Int

        package init(started: Int, finished: Int, stoppedEarly: Int, queued: Int, parked: Int = 0, yields: Int = 0) {
            self.started = started
            self.finished = finished
            self.stoppedEarly = stoppedEarly
            self.queued = queued
            self.parked = parked
            self.yields = yields
        }
    }

    /// Lets queued work finish, then stops the threads; `run` throws afterwards. Required before
    /// an instance of one's own is released (`NIOThreadPool` checks it); `shared` is never stopped.
    package func shutdown() async throws {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let idle = state.withLockedValue { scheduler -> Bool in
                scheduler.stopping = true
                if scheduler.isIdle { return true }
                scheduler.idleWaiters.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
        try await pool.shutdownGracefully()
    }

    private func submit(_ job: Job) {
        enum Decision { case start, queued, refuse(any Error) }
        let decision = state.withLockedValue { scheduler -> Decision in
            if scheduler.stopping { return .refuse(NIOThreadPoolError.ThreadPoolInactive()) }
            if job.flag.isCancelled { return .refuse(CancellationError()) }
            if scheduler.running < scheduler.capacity {
                scheduler.begin(job, now: .now())
                return .start
            }
            scheduler.enqueue(job)
            return .queued
        }
        switch decision {
        case .start: start(job)
        case .queued: armSliceCheck()
        case .refuse(let error): job.abandon(error)
        }
    }

    private func start(_ job: Job) {
        pool.submit { [self] poolState in
            guard case .active = poolState else {
                job.abandon(NIOThreadPoolError.ThreadPoolInactive())
                state.withLockedValue { $0.finished(stoppedEarly: false) }
                dispatchNext(after: job)
                return
            }
            ThreadPriority.lowerOnce()
            job.body(job)
            dispatchNext(after: job)
        }
    }

    /// `job` finished and freed its turn: gives turns to waiting work, if any. Work whose task
    /// was cancelled just now (its flag set, its cancellation handler not yet through) is skipped
    /// when it has not started (and woken to stop when it is parked).
    private func dispatchNext(after job: Job) {
        let (turns, waiters) = state.withLockedValue { scheduler -> (Turns, [CheckedContinuation<Void, Never>]) in
            scheduler.end(job)
            let turns = scheduler.fill(now: .now())
            var waiters: [CheckedContinuation<Void, Never>] = []
            if scheduler.isIdle { swap(&waiters, &scheduler.idleWaiters) }
            return (turns, waiters)
        }
        give(turns)
        for waiter in waiters { waiter.resume() }
    }

    /// Called on `job`'s thread at a check point after it was asked to yield: if work still
    /// waits and a parking place is free, gives the turn to the next waiting work and blocks
    /// until `job`'s own turn comes round again (or its task is cancelled); otherwise returns at
    /// once with a fresh slice.
    private func yield(_ job: Job) {
        let turns: Turns? = state.withLockedValue { scheduler in
            guard !job.flag.isCancelled, scheduler.hasWaitingWork, scheduler.parked < scheduler.maxParked else {
                scheduler.renew(job, now: .now())
                return nil
            }
            scheduler.park(job)
            return scheduler.fill(now: .now())
        }
        guard let turns else { return }
        give(turns, except: job)
        if !turns.wake.contains(where: { $0 === job }) { job.waitForTurn() }
    }

    /// Starts or wakes the work `turns` picked (but not `except`, which is the caller itself and
    /// simply goes on), abandons the cancelled work it skipped, and keeps the slice check armed.
    private func give(_ turns: Turns, except: Job? = nil) {
        for job in turns.skipped { job.abandon(CancellationError()) }
        for job in turns.start { start(job) }
        for job in turns.wake where job !== except { job.wake() }
        armSliceCheck()
    }

    /// While work waits for a turn, asks running work that has used up its slice to yield, and
    /// checks again a slice later. A no-op while nothing waits or a check is already scheduled.
    private func armSliceCheck(notBefore: NIODeadline? = nil) {
        let when: NIODeadline? = state.withLockedValue { scheduler in
            guard !scheduler.sliceCheckArmed, scheduler.hasWaitingWork, let earliest = scheduler.earliestRunningSince else { return nil }
            scheduler.sliceCheckArmed = true
            return max(earliest + slice, notBefore ?? .now())
        }
        guard let when else { return }
        timerLoop.scheduleTask(deadline: when) { [self] in sliceCheck() }
    }

    private func sliceCheck() {
        let now = NIODeadline.now()
        let asked: [Job] = state.withLockedValue { scheduler in
            scheduler.sliceCheckArmed = false
            guard scheduler.hasWaitingWork else { return [] }
            return scheduler.runningJobs.values.filter { now - $0.runningSince >= slice }
        }
        for job in asked { job.flag.requestYield() }
        // Work that has no check points (or is slow to reach one) is asked again a slice later.
        armSliceCheck(notBefore: now + slice)
    }
}

/// Whose CPU work it is, for fair admission (`ComputeThreads`): one per connection.
package struct ComputeTenant: Hashable, Sendable {
    private let id: ObjectIdentifier?

    /// The tenant of the calls of `connection`.
    package init(_ connection: ConnectionState) {
        id = ObjectIdentifier(connection)
    }

    private init() { id = nil }

    /// Work submitted outside any call (tests, tools): one tenant for all of it.
    package static let unattributed = ComputeTenant()
}

extension ComputeThreads {
    /// A piece of work. Its mutable fields are guarded by `ComputeThreads.state`'s lock.
    fileprivate final class Job: @unchecked Sendable {
        let id: UInt64
        let tenant: ComputeTenant
        let flag: CancellationFlag
        /// A later piece of a call's work: it waits with parked work (`Scheduler`).
        let continuing: Bool
        /// Runs the work and resumes its caller (on a pool thread).
        let body: @Sendable (Job) -> Void
        /// Resumes its caller with an error; the work never runs.
        let abandon: @Sendable (any Error) -> Void
        /// When the work's current turn began (under the lock).
        var runningSince = NIODeadline.uptimeNanoseconds(0)
        /// Whether the work yielded and waits in its tenant's queue for its next turn (under the lock).
        var isParked = false
        private let turn = DispatchSemaphore(value: 0)

        init(id: UInt64, tenant: ComputeTenant, flag: CancellationFlag, continuing: Bool, body: @escaping @Sendable (Job) -> Void,
             abandon: @escaping @Sendable (any Error) -> Void) {
            self.id = id
            self.tenant = tenant
            self.flag = flag
            self.continuing = continuing
            self.body = body
            self.abandon = abandon
        }

        /// Blocks the work's thread until `wake()` (which may come first).
        func waitForTurn() { turn.wait() }
        /// Ends `waitForTurn()`.
        func wake() { turn.signal() }
    }

    /// What a change of turns decided, acted on outside the lock.
    fileprivate struct Turns {
        /// New work to start on a pool thread.
        var start: [Job] = []
        /// Parked work to wake on its own thread.
        var wake: [Job] = []
        /// Queued work whose task was cancelled: abandoned, never run.
        var skipped: [Job] = []
    }

    /// What a cancellation found.
    fileprivate enum CancelOutcome {
        /// The work was queued, not started: it never runs.
        case removed(Job)
        /// The work was parked: woken (over the capacity, briefly) to see its flag and stop.
        case woken(Job)
        /// Running, finished, or never queued: its flag does the rest.
        case none
    }

    /// Queues per tenant, served round robin.
    fileprivate struct RoundRobin {
        private var queues: [ComputeTenant: [Job]] = [:]
        /// Tenants with queued work, in turn order; `turn` is the next one to serve.
        private var ring: [ComputeTenant] = []
        private var turn = 0
        private(set) var count = 0

        /// `job` waits at the back of its tenant's queue.
        mutating func append(_ job: Job) {
            if queues[job.tenant, default: []].isEmpty {
                // A tenant that had nothing waiting joins the round just before the one to serve
                // next, so it waits for at most one turn of every other tenant.
                ring.insert(job.tenant, at: turn)
                turn += 1
                if turn >= ring.count { turn = 0 }
            }
            queues[job.tenant, default: []].append(job)
            count += 1
        }

        /// The job `id` of `tenant`, removed; nil if it does not wait here.
        mutating func remove(id: UInt64, tenant: ComputeTenant) -> Job? {
            guard var queue = queues[tenant], let index = queue.firstIndex(where: { $0.id == id }) else { return nil }
            let job = queue.remove(at: index)
            count -= 1
            if queue.isEmpty {
                queues[tenant] = nil
                if let index = ring.firstIndex(of: tenant) {
                    ring.remove(at: index)
                    if index < turn { turn -= 1 }
                    if turn >= ring.count { turn = 0 }
                }
            } else {
                queues[tenant] = queue
            }
            return job
        }

        /// The next tenant's oldest job, removed from its queue.
        mutating func next() -> Job? {
            guard !ring.isEmpty else { return nil }
            if turn >= ring.count { turn = 0 }
            let tenant = ring[turn]
            var queue = queues[tenant]!
            let job = queue.removeFirst()
            count -= 1
            if queue.isEmpty {
                queues[tenant] = nil
                ring.remove(at: turn)
                if turn >= ring.count { turn = 0 }
            } else {
                queues[tenant] = queue
                turn = (turn + 1) % ring.count
            }
            return job
        }
    }

    /// Two levels of waiting work, each served round robin across tenants: work that has not
    /// started yet goes before work that has had turns (parked work, and `continuing` pieces).
    /// Short calls, which end within their first slice, so never wait behind a long one's next
    /// slice; long work runs whenever no new work waits, in turn across tenants whether it was
    /// parked or comes in pieces. A tenant flooding new work gets one slice per piece before it
    /// joins the second level, in turn with every other tenant. Guarded by
    /// `ComputeThreads.state`'s lock.
    fileprivate struct Scheduler {
        let capacity: Int
        let maxParked: Int
        /// Work holding a turn (running, or woken to stop after a cancel).
        private(set) var running = 0
        private(set) var runningJobs: [UInt64: Job] = [:]
        var stopping = false
        var sliceCheckArmed = false
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
        private var lastID: UInt64 = 0
        /// Work not started yet.
        private var fresh = RoundRobin()
        /// Work that had turns: parked work (it yielded and waits for its next turn) and
        /// `continuing` pieces not started yet.
        private var later = RoundRobin()
        /// The parked jobs in `later`.
        private(set) var parked = 0
        private(set) var started = 0
        private(set) var finishedCount = 0
        private(set) var stoppedEarly = 0
        private(set) var yields = 0

        init(capacity: Int, maxParked: Int) {
            self.capacity = capacity
            self.maxParked = maxParked
        }

        /// Work not started yet.
        var queuedCount: Int { fresh.count + later.count - parked }
        var isIdle: Bool { running == 0 && !hasWaitingWork }
        var hasWaitingWork: Bool { fresh.count + later.count > 0 }
        var earliestRunningSince: NIODeadline? { runningJobs.values.map(\.runningSince).min() }

        mutating func newID() -> UInt64 {
            lastID += 1
            return lastID
        }

        /// `job` takes a turn for the first time.
        mutating func begin(_ job: Job, now: NIODeadline) {
            running += 1
            started += 1
            runningJobs[job.id] = job
            job.runningSince = now
        }

        /// `job`'s work returned.
        mutating func end(_ job: Job) {
            running -= 1
            runningJobs[job.id] = nil
        }

        mutating func finished(stoppedEarly early: Bool) {
            finishedCount += 1
            if early { stoppedEarly += 1 }
        }

        /// `job` goes on with a fresh slice (it was asked to yield, but nothing needs its turn).
        mutating func renew(_ job: Job, now: NIODeadline) {
            job.runningSince = now
        }

        /// `job` gives up its turn and waits at the back of its tenant's parked queue.
        mutating func park(_ job: Job) {
            running -= 1
            runningJobs[job.id] = nil
            job.isParked = true
            parked += 1
            yields += 1
            later.append(job)
        }

        /// Hands free turns to waiting work: new work first, then parked work, tenants in turn.
        mutating func fill(now: NIODeadline) -> Turns {
            var turns = Turns()
            while running < capacity, let job = fresh.next() ?? later.next() {
                if job.isParked {
                    job.isParked = false
                    parked -= 1
                    running += 1
                    runningJobs[job.id] = job
                    job.runningSince = now
                    turns.wake.append(job)
                } else if job.flag.isCancelled {
                    turns.skipped.append(job)
                } else {
                    begin(job, now: now)
                    turns.start.append(job)
                }
            }
            return turns
        }

        /// New work waits at the back of its tenant's queue, a `continuing` piece with parked work.
        mutating func enqueue(_ job: Job) {
            if job.continuing { later.append(job) } else { fresh.append(job) }
        }

        /// The cancelled work `id` of `tenant`: removed from its queue if it waits there.
        mutating func cancel(id: UInt64, tenant: ComputeTenant) -> CancelOutcome {
            if let job = fresh.remove(id: id, tenant: tenant) { return .removed(job) }
            guard let job = later.remove(id: id, tenant: tenant) else { return .none }
            guard job.isParked else { return .removed(job) }
            job.isParked = false
            parked -= 1
            running += 1
            runningJobs[job.id] = job
            return .woken(job)
        }
    }
}

/// The compute threads run at a lower OS priority (nice +5) than the threads that read, decode
/// small requests and write answers (NIO's event loops, Swift's cooperative pool).
///
/// Why: a heavy call's simulation is time-sliced against other simulations (`ComputeThreads`),
/// but the OS still shares the cores between it and the short steps of other connections' calls
/// (reading, cache lookups, encoding), which then wait for a core. At nice +5 the scheduler gives
/// those steps about three times the heavy work's share while both want a core; the heavy work
/// still gets every idle cycle. Under `loadtest --hostile 5` (README) this is what keeps the
/// users' p99 near the run without hostile clients. Raising a thread's nice value needs no
/// privilege; it is never lowered again (the threads only ever run compute work). No-op where
/// `setpriority` or `gettid` is missing.
enum ThreadPriority {
    /// The nice increment of a compute thread.
    static let niceness: Int32 = 5

    /// Lowers the calling thread's priority the first time it is called on that thread.
    static func lowerOnce() {
        #if canImport(Glibc)
        guard lowered.currentValue == nil else { return }
        lowered.currentValue = Marker()
        guard let gettid = threadID else { return }
        // PRIO_PROCESS (0) with a thread id addresses that one thread on Linux.
        _ = setpriority(__priority_which_t(0), id_t(gettid()), niceness)
        #endif
    }

    #if canImport(Glibc)
    private typealias GetTID = @convention(c) () -> Int32
    nonisolated(unsafe) private static let threadID: GetTID? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "gettid")
        .map { unsafeBitCast($0, to: GetTID.self) }
    /// Set on a thread once its priority is lowered.
    private final class Marker {}
    nonisolated(unsafe) private static let lowered = ThreadSpecificVariable<Marker>()
    #endif
}
