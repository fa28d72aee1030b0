import BacktestCore
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
/// Cancellation: work still queued when its task is cancelled does not start and the await
/// throws `CancellationError`. Work already running is told through its `CancellationFlag`
/// (`run(cancellable:)`), which the engine checks every few milliseconds, and stops early.
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

    private let pool: NIOThreadPool
    private let state: NIOLockedValueBox<Scheduler>

    /// Starts `numberOfThreads` threads (at least one). An instance other than `shared` must be
    /// `shutdown()` before it is released.
    package init(numberOfThreads: Int) {
        let threads = max(1, numberOfThreads)
        pool = NIOThreadPool(numberOfThreads: threads)
        state = NIOLockedValueBox(Scheduler(capacity: threads))
        pool.start()
    }

    /// The number of threads.
    package var numberOfThreads: Int { pool.numberOfThreads }

    /// Runs `work` on one of the threads and returns its value; the calling task is suspended
    /// meanwhile. Throws `CancellationError` when the task is cancelled before `work` started.
    package func run<Value: Sendable>(_ work: @escaping @Sendable () -> Value) async throws -> Value {
        try await run(cancellable: { _ in work() })
    }

    /// Runs `work` on one of the threads and returns its value; the flag passed to `work` is set
    /// when the calling task is cancelled while `work` runs, so `work` can stop early (it checks
    /// the flag; see `CancellationFlag`). Throws `CancellationError` when the task is cancelled
    /// before `work` started, and `NIOThreadPoolError.ThreadPoolInactive` after `shutdown()`.
    package func run<Value: Sendable>(cancellable work: @escaping @Sendable (CancellationFlag) -> Value) async throws -> Value {
        try Task.checkCancellation()
        let flag = CancellationFlag()
        let tenant = ComputeThreads.tenant
        let id = state.withLockedValue { $0.newID() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Value, any Error>) in
                let job = Job(
                    id: id, tenant: tenant, flag: flag,
                    body: { [self] in
                        let value = work(flag)
                        state.withLockedValue { $0.finished(stoppedEarly: flag.wasObserved) }
                        continuation.resume(returning: value)
                    },
                    abandon: { continuation.resume(throwing: $0) })
                submit(job)
            }
        } onCancel: {
            // Set before the lock is taken: `submit` and `dispatch` check it under the lock.
            flag.cancel()
            let removed = state.withLockedValue { $0.remove(id: id, tenant: tenant) }
            removed?.abandon(CancellationError())
        }
    }

    /// Counts since the threads started, for tests and metrics: pieces of work started, finished,
    /// and finished early because they saw their cancellation flag; and work waiting for a thread.
    package var counts: Counts {
        state.withLockedValue { Counts(started: $0.started, finished: $0.finishedCount, stoppedEarly: $0.stoppedEarly, queued: $0.queuedCount) }
    }

    /// See `counts`.
    package struct Counts: Sendable, Equatable {
        package var started: Int
        package var finished: Int
        package var stoppedEarly: Int
        package var queued: Int

        package init(started: Int, finished: Int, stoppedEarly: Int, queued: Int) {
            self.started = started
            self.finished = finished
            self.stoppedEarly = stoppedEarly
            self.queued = queued
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
                scheduler.running += 1
                scheduler.started += 1
                return .start
            }
            scheduler.enqueue(job)
            return .queued
        }
        switch decision {
        case .start: start(job)
        case .queued: break
        case .refuse(let error): job.abandon(error)
        }
    }

    private func start(_ job: Job) {
        pool.submit { [self] poolState in
            guard case .active = poolState else {
                job.abandon(NIOThreadPoolError.ThreadPoolInactive())
                state.withLockedValue { $0.finished(stoppedEarly: false) }
                dispatchNext()
                return
            }
            job.body()
            dispatchNext()
        }
    }

    /// A thread became free: starts the next tenant's oldest work, if any. Work whose task was
    /// cancelled just now (its flag set, its cancellation handler not yet through) is skipped.
    private func dispatchNext() {
        let (next, skipped, waiters) = state.withLockedValue { scheduler -> (Job?, [Job], [CheckedContinuation<Void, Never>]) in
            scheduler.running -= 1
            var skipped: [Job] = []
            var next = scheduler.next()
            while let job = next, job.flag.isCancelled {
                skipped.append(job)
                next = scheduler.next()
            }
            if next != nil {
                scheduler.running += 1
                scheduler.started += 1
            }
            var waiters: [CheckedContinuation<Void, Never>] = []
            if scheduler.isIdle { swap(&waiters, &scheduler.idleWaiters) }
            return (next, skipped, waiters)
        }
        for job in skipped { job.abandon(CancellationError()) }
        if let next { start(next) }
        for waiter in waiters { waiter.resume() }
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
    fileprivate struct Job: Sendable {
        let id: UInt64
        let tenant: ComputeTenant
        let flag: CancellationFlag
        /// Runs the work and resumes its caller (on a pool thread).
        let body: @Sendable () -> Void
        /// Resumes its caller with an error; the work never runs.
        let abandon: @Sendable (any Error) -> Void
    }

    /// Queues per tenant, served round robin. Guarded by `ComputeThreads.state`'s lock.
    fileprivate struct Scheduler {
        let capacity: Int
        var running = 0
        var stopping = false
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
        private var lastID: UInt64 = 0
        private var queues: [ComputeTenant: [Job]] = [:]
        /// Tenants with queued work, in turn order; `turn` is the next one to serve.
        private var ring: [ComputeTenant] = []
        private var turn = 0
        private(set) var queuedCount = 0
        var started = 0
        private(set) var finishedCount = 0
        private(set) var stoppedEarly = 0

        init(capacity: Int) { self.capacity = capacity }

        var isIdle: Bool { running == 0 && queuedCount == 0 }

        mutating func newID() -> UInt64 {
            lastID += 1
            return lastID
        }

        mutating func finished(stoppedEarly early: Bool) {
            finishedCount += 1
            if early { stoppedEarly += 1 }
        }

        mutating func enqueue(_ job: Job) {
            if queues[job.tenant, default: []].isEmpty {
                // A tenant that had nothing waiting joins the round just before the one to serve
                // next, so it waits for at most one turn of every other tenant.
                ring.insert(job.tenant, at: turn)
                turn += 1
                if turn >= ring.count { turn = 0 }
            }
            queues[job.tenant, default: []].append(job)
            queuedCount += 1
        }

        /// The queued job `id` of `tenant`, removed; nil if it is not queued (started or done).
        mutating func remove(id: UInt64, tenant: ComputeTenant) -> Job? {
            guard var queue = queues[tenant], let index = queue.firstIndex(where: { $0.id == id }) else { return nil }
            let job = queue.remove(at: index)
            queuedCount -= 1
            if queue.isEmpty {
                queues[tenant] = nil
                leaveRing(tenant)
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
            queuedCount -= 1
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

        private mutating func leaveRing(_ tenant: ComputeTenant) {
            guard let index = ring.firstIndex(of: tenant) else { return }
            ring.remove(at: index)
            if index < turn { turn -= 1 }
            if turn >= ring.count { turn = 0 }
        }
    }
}
