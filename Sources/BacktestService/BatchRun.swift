import BacktestCore
import BacktestModel
import Logging
import NIOCore

/// One RunBatch call through the pipeline's one execution path (`BacktestPipeline.execute`):
/// validate each variant once (an invalid one reports its own error and the others go on), run
/// the shared phase once for the valid ones, then simulate them with at most `parallelism` at a
/// time, streaming an update the moment each finishes, and a final one.
struct BatchRun {
    let request: BatchRequest
    let pipeline: BacktestPipeline
    let job: BatchJob
    let parallelism: Int
    /// The call's deadline; the run may outlive its connection but not this.
    var deadline = NIODeadline.distantFuture
    /// The call's connection. Once it is lost the run goes on only while a client re-attaches:
    /// when no GetBatchStatus read the job for `abandonAfter` since the loss (or since the last
    /// read), the remaining variants are not started. A client re-attaching on the standard
    /// schedule polls at least every 60 s.
    var connection: ConnectionState?
    var abandonAfter = TimeAmount.seconds(150)
    let logger: Logger
    /// A pause before each finished variant is recorded and streamed (`--variant-delay-ms`, for
    /// demos and browser tests); zero for none. Cancellation ends the pause at once.
    var variantDelay = Duration.zero

    func run(emit: @escaping @Sendable (ProgressUpdate) async throws -> Void) async throws {
        let started = ContinuousClock.now
        guard !request.variants.isEmpty else {
            await job.finish(.failed, error: .invalidArgument("a batch needs at least one variant", field: "run_batch.variants"))
            throw BacktestError.invalidArgument("a batch needs at least one variant", field: "run_batch.variants")
        }
        do {
            try await runVariants(started: started, emit: emit)
        } catch {
            // A CancelBatch ended the job already: the stream (if still open) ends with its reason.
            if let reason = await job.cancelReason { throw reason }
            // Cancel, deadline or disconnect: remaining variants stop; the job keeps what finished.
            let completed = await job.completed
            let status = (error as? BacktestError)
                ?? (NIODeadline.now() >= deadline
                    ? BacktestError(.deadlineExceeded, "deadline exceeded after \(completed) of \(request.variants.count) variants")
                    : BacktestError(.cancelled, "batch cancelled after \(completed) of \(request.variants.count) variants"))
            let state: BatchState = status.code == .cancelled || status.code == .deadlineExceeded ? .cancelled : .failed
            await job.finish(state, error: status)
            throw error
        }
    }

    private func runVariants(started: ContinuousClock.Instant, emit: @escaping @Sendable (ProgressUpdate) async throws -> Void) async throws {
        // The id goes out before anything slow (the data fetch), so the batch can be re-attached
        // to or cancelled by id from the first moment.
        try await emit(await job.started())
        let job = self.job
        let shared = try await pipeline.execute(
            request.variants, settings: request.settings, parallelism: parallelism, label: "batch \(job.id)",
            paths: .runBatch, invalid: request.invalidVariants,
            running: { await job.noteRunning($0) },
            rejected: { result in
                if let update = await job.record(result) { try await emit(update) }
            },
            finished: { [variantDelay] result in
                if variantDelay > .zero { try await Task.sleep(for: variantDelay) }
                if let update = await job.record(result) { try await emit(update) }
                try await stopIfAbandoned()
            })
        guard var stats = shared else {
            try await emit(try await finalUpdate(stats: RunStatistics()))
            return
        }
        stats.totalMs = (ContinuousClock.now - started).milliseconds
        stats.variantsPerSecond = Double(request.variants.count) / max(stats.totalMs / 1000, 1e-9)
        logger.info("\(PerformanceLine(label: "batch \(job.id) (\(request.variants.count) variants)", stats: stats))")
        try await emit(try await finalUpdate(stats: stats))
    }

    /// The Final update, or the CancelBatch's reason when one ended the job first.
    private func finalUpdate(stats: RunStatistics) async throws -> ProgressUpdate {
        let update = await job.finish(.final, stats: stats)
        if update.state != .final, let reason = await job.cancelReason { throw reason }
        return update
    }

    /// A disconnect stops the remaining variants unless someone re-attached in time.
    private func stopIfAbandoned() async throws(BacktestError) {
        guard let lostAt = connection?.lostAt else { return }
        let lastSign = max(lostAt, await job.lastReadAt ?? lostAt)
        guard NIODeadline.now() - lastSign > abandonAfter else { return }
        let completed = await job.completed
        throw BacktestError(.cancelled,
            "batch stopped after \(completed) of \(request.variants.count) variants: its connection was lost and no client re-attached within \(abandonAfter.nanoseconds / 1_000_000_000) s")
    }
}
