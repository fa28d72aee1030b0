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
/// awaiting task is suspended and its cooperative thread free meanwhile. Work is queued in
/// order when every thread is busy, so parallel batches share the cores as before.
///
/// Cancellation: work still queued when its task is cancelled does not start and the await
/// throws `CancellationError`; work already started runs to its end (one variant), so a batch
/// stops between variants.
///
/// Not for blocking I/O (hiredis and curl have their own threads): a thread here waiting on I/O
/// is a core's worth of simulations not run.
package final class ComputeThreads: Sendable {
    /// The process's threads for CPU-bound pipeline work: one per core, started on first use and
    /// never stopped (like NIO's singletons).
    package static let shared = ComputeThreads(numberOfThreads: System.coreCount)

    private let pool: NIOThreadPool

    /// Starts `numberOfThreads` threads (at least one). An instance other than `shared` must be
    /// `shutdown()` before it is released.
    package init(numberOfThreads: Int) {
        pool = NIOThreadPool(numberOfThreads: max(1, numberOfThreads))
        pool.start()
    }

    /// The number of threads.
    package var numberOfThreads: Int { pool.numberOfThreads }

    /// Runs `work` on one of the threads and returns its value; the calling task is suspended
    /// meanwhile. Throws `CancellationError` when the task is cancelled before `work` started.
    package func run<Value: Sendable>(_ work: @escaping @Sendable () -> Value) async throws -> Value {
        try Task.checkCancellation()
        return try await pool.runIfActive(work)
    }

    /// Lets queued work finish, then stops the threads; `run` throws afterwards. Required before
    /// an instance of one's own is released (`NIOThreadPool` checks it); `shared` is never stopped.
    package func shutdown() async throws {
        try await pool.shutdownGracefully()
    }
}
