import Foundation

/// A fixed set of threads, each owning one `Resource`, that run blocking jobs.
///
/// Blocking C calls (libcurl's `curl_easy_perform` may wait for seconds) must not occupy Swift's
/// cooperative pool or a NIO event loop. Each thread creates its resource on itself and keeps it
/// for its whole life, which is what libcurl wants: an easy handle is not thread-safe, and
/// reusing one keeps its connection (and TLS session) alive between requests.
final class BlockingWorkerPool<Resource>: @unchecked Sendable {
    typealias Job = @Sendable (Resource) -> Void

    // All mutable state is guarded by `condition`.
    private let condition = NSCondition()
    private var jobs: [Job] = []
    private var nextJob = 0
    private var isShutDown = false

    /// Starts `threadCount` threads; each calls `makeResource` once on itself and `destroy` when
    /// the pool shuts down.
    init(
        threadCount: Int, name: String,
        makeResource: @escaping @Sendable () -> Resource,
        destroy: @escaping @Sendable (Resource) -> Void
    ) {
        for index in 0..<max(1, threadCount) {
            let thread = Thread { [self] in
                let resource = makeResource()
                while let job = self.take() { job(resource) }
                destroy(resource)
            }
            thread.name = "\(name)-\(index)"
            thread.start()
        }
    }

    /// Queues `job`; false when the pool is shut down (the job will not run).
    @discardableResult
    func submit(_ job: @escaping Job) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !isShutDown else { return false }
        jobs.append(job)
        condition.signal()
        return true
    }

    /// Lets the threads finish the queued jobs, then end. Idempotent, does not wait.
    func shutdown() {
        condition.lock()
        isShutDown = true
        condition.broadcast()
        condition.unlock()
    }

    private func take() -> Job? {
        condition.lock()
        defer { condition.unlock() }
        while nextJob == jobs.count && !isShutDown { condition.wait() }
        guard nextJob < jobs.count else { return nil }
        let job = jobs[nextJob]
        nextJob += 1
        if nextJob > 64 && nextJob * 2 > jobs.count {  // compact the consumed prefix
            jobs.removeFirst(nextJob)
            nextJob = 0
        }
        return job
    }
}
