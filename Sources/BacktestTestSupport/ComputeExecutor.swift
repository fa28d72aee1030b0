import Foundation

/// Threads of their own for tests whose synchronous work is long and CPU-bound (engine sweeps,
/// engine-against-engine comparisons), as a `TaskExecutor`: a test run under
/// `withTaskExecutorPreference(ComputeExecutor.shared) { }` (the engine tests' `.offCooperativePool`
/// trait) keeps its task, so its task-locals and recorded issues stay its own, but its
/// synchronous code runs on these threads instead of Swift's cooperative pool.
///
/// Why: every test target runs in one process, in parallel, and the cooperative pool has one
/// thread per core. A synchronous test that computes for a minute (the 10,000-variant sweep)
/// holds a cooperative thread all that time, and with two cores the server, client, cache and
/// timer tasks of every other test wait for the other one; tests with real-time bounds then
/// fail for want of a thread, not of CPU. Threads here are time-sliced by the OS instead.
package final class ComputeExecutor: TaskExecutor, @unchecked Sendable {
    /// One thread per core, started on first use, living as long as the process.
    package static let shared = ComputeExecutor(threads: ProcessInfo.processInfo.activeProcessorCount)

    // Guards `jobs`; the threads wait on it for work.
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []

    /// Starts `threads` threads (at least one) that run enqueued jobs in order.
    package init(threads: Int) {
        for index in 0..<max(1, threads) {
            let thread = Thread { [self] in runJobs() }
            thread.name = "test-compute-\(index)"
            thread.start()
        }
    }

    package func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    private func runJobs() {
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
