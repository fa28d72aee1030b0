import BacktestCore
import BacktestEngine
import BacktestModel
import BacktestProtocol
import Logging
import NIOCore
import NIOConcurrencyHelpers

/// A RunBatch whose results are SUMMARY: the engine's `SweepRunner` on one prepared calendar,
/// in chunks, recording each summary in the job's `SummaryStore` from the worker threads, while
/// a streamer sends what finished as coalesced `ProgressUpdate`s.
///
/// Coalescing: an update goes out at most every `window` (50 ms) with every result recorded
/// since the previous one, up to `maxResultsPerUpdate` (4096) results and about
/// `maxUpdateBytes` (half the frame limit) each; more waiting results go out in further updates
/// at once. The runner never waits for the client: the job keeps every summary anyway (that is
/// what re-attach reads), so a slow reader only makes the updates larger.
///
/// Validation and analysis: listed variants are validated once (`BacktestPipeline.validate`; an
/// invalid one reports its own error); a grid's shared phase validates the base and one strategy
/// per axis value (`GridPlan.analysisChange`), not every variant, and analyses the union of what
/// they read. The shared
/// phase is the pipeline's `prepare` (one cache session, one `PreparedMarket`).
///
/// Control: the first update (0 completed) announces the id before the data fetch; CancelBatch,
/// the deadline or a cancelled call (`BatchJob.onCancel` cancels its task) stop the run within
/// milliseconds: the running chunk's `SweepRunner` sees its `CancellationFlag` before each
/// variant and inside the running ones, and no further chunk starts. The job keeps what
/// finished. Chunks run on `ComputeThreads.shared`, never on the cooperative pool.
struct SweepBatchRun {
    let source: BatchSource
    let pipeline: BacktestPipeline
    let job: BatchJob
    let parallelism: Int
    var connection: ConnectionState?
    var abandonAfter = TimeAmount.seconds(150)
    let logger: Logger
    var window: Duration = .milliseconds(50)
    var maxResultsPerUpdate = 4096
    var maxUpdateBytes = Wire.defaultMaxFramePayload / 2
    /// Variants per `SweepRunner` call: the unit of cancellation and of plan memory.
    var chunkSize = 4096
    /// Positions per `SweepRunner` call, all its variants together: a chunk's plan holds each
    /// position's legs (about 55 bytes each), so 4,096 variants of a tester's 1,000-position grid
    /// held 221 MB of plan per batch (1.3 GB for three at once). At least one variant a chunk.
    var chunkPositions = 65_536
    /// A pause before each variant (`--variant-delay-ms`, for demos and browser tests): with it
    /// the variants run one per chunk, so each result is recorded a pause after the previous one.
    /// Zero for none; cancellation ends the pause at once.
    var variantDelay = Duration.zero

    /// Runs the batch to its final update; on cancel, deadline or a failed shared phase the job
    /// ends CANCELLED or FAILED with what finished, and the error is rethrown.
    func run(deadline: NIODeadline, emit: @escaping @Sendable (ProgressUpdate) async throws -> Void) async throws {
        do {
            try await runVariants(emit: emit)
        } catch {
            // A CancelBatch ended the job already: the stream (if still open) ends with its reason.
            if let reason = await job.cancelReason { throw reason }
            let completed = await job.completed
            let status = (error as? BacktestError)
                ?? (NIODeadline.now() >= deadline
                    ? BacktestError(.deadlineExceeded, "deadline exceeded after \(completed) of \(job.total) variants")
                    : BacktestError(.cancelled, "batch cancelled after \(completed) of \(job.total) variants"))
            let state: BatchState = status.code == .cancelled || status.code == .deadlineExceeded ? .cancelled : .failed
            await job.finish(state, error: status)
            throw error
        }
    }

    private func runVariants(emit: @escaping @Sendable (ProgressUpdate) async throws -> Void) async throws {
        let started = ContinuousClock.now
        let total = source.count
        // The id goes out before anything slow (the data fetch), so the batch can be re-attached
        // to or cancelled by id from the first moment.
        try await emit(await job.started())
        // Variants to analyse (validated once), and listed variants that are invalid on their own.
        var analysed: [ValidatedVariant] = []
        var runnable: [Int]
        if let grid = source.grid {
            analysed = try await pipeline.validate(grid: grid, settings: source.settings)
            runnable = Array(0..<total)
        } else {
            runnable = []
            for outcome in pipeline.validate(source.variants, settings: source.settings, paths: .runBatch, invalid: source.invalidVariants) {
                switch outcome {
                case .success(let variant):
                    analysed.append(variant)
                    runnable.append(variant.index)
                case .failure(let rejection):
                    job.summaries.append(rejection.index, .failure(rejection.error))
                }
            }
        }
        if analysed.isEmpty {
            _ = try await stream(from: 0, emit: emit)
            try await emit(try await finalUpdate(stats: RunStatistics()))
            return
        }
        let prepared: PreparedBatch
        do {
            prepared = try await pipeline.prepare(analysed, settings: source.settings)
        } catch {
            // An unknown ticker in a grid value names that value.
            throw CallPaths.gridAnalysis(valueCounts: source.grid?.valueCounts ?? []).gridValueError(error)
        }
        // A grid value (or the base) reading a ticker with no data at all fails the call, naming
        // that value; a listed variant doing so fails alone (`simulate`).
        let known = Set(prepared.snapshot.bars.keys)
        if let grid = source.grid {
            let paths = CallPaths.gridAnalysis(valueCounts: grid.valueCounts)
            for variant in analysed {
                if let unknown = StrategyAnalysis.unknownTickerError(in: variant.strategy, root: variant.path, hasData: known.contains) {
                    throw paths.gridValueError(variant.placedInBase(unknown))
                }
            }
        }
        // A cancel (CancelBatch, deadline) during the fetch stops the run before any variant.
        try Task.checkCancellation()
        let market: PreparedMarket = try prepared.market.mapError { CallPaths.runBatch.placeShared($0) }.get()
        job.summaries.setShared(
            benchmarkMetrics: market.benchmarkMetrics, initialCapital: source.settings.initialCapital,
            warnings: prepared.warnings, dataSource: prepared.snapshot.source)

        // The streamer: wakes every `window`, and when the runner is done.
        let (ticks, tick) = AsyncStream<Bool>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let job = self.job
        let source = self.source
        let parallelism = self.parallelism
        let variantDelay = self.variantDelay
        let chunkSize = variantDelay > .zero ? 1 : self.chunkSize
        let chunkPositions = self.chunkPositions
        let indicators = prepared.indicators
        let work = runnable
        let abandon = self
        let computeThreads = pipeline.computeThreads
        let simulation = Task { () async throws -> Double in
            defer {
                tick.yield(true)
                tick.finish()
            }
            var simulationMs = 0.0
            var start = 0
            while start < work.count {
                try Task.checkCancellation()
                try await abandon.stopIfAbandoned()
                if variantDelay > .zero { try await Task.sleep(for: variantDelay) }
                let end = SweepBatchRun.chunkEnd(work, from: start, source: source, variants: chunkSize, positions: chunkPositions)
                let chunk = Array(work[start..<end])
                start += chunk.count
                simulationMs += try await SweepBatchRun.simulate(
                    chunk, source: source, market: market, indicators: indicators, known: known, parallelism: parallelism,
                    store: job.summaries, on: computeThreads, continuing: start > chunk.count)
            }
            return simulationMs
        }
        let timer = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: window)
                tick.yield(false)
            }
        }
        defer { timer.cancel() }
        // The whole streaming phase cancels the simulation when the run is cancelled (CANCEL,
        // deadline, CancelBatch), even while an update waits for a client that is not reading:
        // the simulation is an unstructured task and would otherwise run to the end.
        var sent = 0
        let simulationMs: Double
        do {
            simulationMs = try await withTaskCancellationHandler {
                for await done in ticks {
                    sent = try await stream(from: sent, emit: emit)
                    if done { break }
                }
                return try await simulation.value
            } onCancel: {
                simulation.cancel()
            }
        } catch {
            timer.cancel()
            simulation.cancel()
            _ = try? await simulation.value
            throw error
        }
        sent = try await stream(from: sent, emit: emit)
        var stats = prepared.stats
        stats.simulationMs = prepared.marketMs + simulationMs
        stats.barsProcessed = market.dates.count * runnable.count
        stats.totalMs = (ContinuousClock.now - started).milliseconds
        stats.variantsPerSecond = Double(total) / max(stats.totalMs / 1000, 1e-9)
        logger.info("\(PerformanceLine(label: "batch \(job.id) (\(total) variants, SUMMARY)", stats: stats))")
        try await emit(try await finalUpdate(stats: stats))
    }

    /// The Final update, or the CancelBatch's reason when one ended the job first.
    private func finalUpdate(stats: RunStatistics) async throws -> ProgressUpdate {
        let update = await job.finish(.final, stats: stats)
        if update.state != .final, let reason = await job.cancelReason { throw reason }
        return update
    }

    /// Where the chunk of `work` starting at `start` ends: at most `variants` variants and, past
    /// the first, at most `positions` positions together (`BatchSource.positionCount`).
    static func chunkEnd(_ work: [Int], from start: Int, source: BatchSource, variants: Int, positions: Int) -> Int {
        var end = start + 1
        var total = source.positionCount(work[start])
        while end < min(work.count, start + variants) {
            total += source.positionCount(work[end])
            guard total <= positions else { break }
            end += 1
        }
        return end
    }

    /// Simulates `indices` on one of `computeThreads` (SweepRunner blocks its caller; never on
    /// the cooperative pool), recording each summary; returns the summed simulation time in
    /// milliseconds. Throws `CancellationError` when the task is cancelled before the chunk starts
    /// or while it runs (the chunk then stops early; variants not finished are not recorded).
    /// A listed variant reading a ticker outside `known` (the tickers with data) is recorded as
    /// NOT_FOUND naming where it reads it, and not simulated. `continuing`: a chunk after the
    /// first, which waits for a compute thread with parked work (`ComputeThreads`).
    static func simulate(
        _ indices: [Int], source: BatchSource, market: PreparedMarket, indicators: IndicatorStore, known: Set<String>, parallelism: Int,
        store: SummaryStore, on computeThreads: ComputeThreads, continuing: Bool = false
    ) async throws -> Double {
        // The chunk's strategies are built on the compute thread too: a grid of many axes over
        // many positions costs real time per variant, which must not hold the cooperative pool.
        let simulationMs = try await computeThreads.run(continuing: continuing, cancellable: { cancellation in
            var strategies: [Strategy] = []
            strategies.reserveCapacity(indices.count)
            var mapped: [Int] = []
            for index in indices {
                if (try? cancellation.check()) == nil { return 0.0 }
                do throws(BacktestError) {
                    let strategy = try source.strategy(index, field: "run_batch")
                    if source.grid == nil, let unknown = StrategyAnalysis.unknownTickerError(
                        in: strategy, root: CallPaths.runBatch.strategy(index), hasData: known.contains) {
                        throw unknown
                    }
                    strategies.append(strategy)
                    mapped.append(index)
                } catch {
                    store.append(index, .failure(error))
                }
            }
            let total = NIOLockedValueBox(0.0)
            let order = mapped
            SweepRunner.run(
                strategies, market: market, indicators: indicators, parallelism: parallelism, cancellation: cancellation
            ) { i, outcome in
                if case .success(let summary) = outcome { total.withLockedValue { $0 += summary.stats.simulationMs } }
                store.append(order[i], outcome.mapError { (error: BacktestError) -> BacktestError in
                    CallPaths.runBatch.place(error, strategy: order[i])
                })
            }
            return total.withLockedValue { $0 }
        })
        // A chunk that saw its cancellation flag returns early without an error: the batch must
        // end CANCELLED, never FINAL with the variants that did not run missing.
        try Task.checkCancellation()
        return simulationMs
    }

    /// Sends every result recorded after the first `sent`, in updates of bounded size.
    private func stream(from sent: Int, emit: @escaping @Sendable (ProgressUpdate) async throws -> Void) async throws -> Int {
        var sent = sent
        while true {
            let plan = source.grid
            let batch = job.summaries.results(
                from: sent, maxCount: maxResultsPerUpdate, parameters: { (index: Int) -> [GridParameter] in plan?.parameters(of: index) ?? [] })
            guard !batch.isEmpty else { return sent }
            var results: [VariantResult] = []
            var bytes = 0
            for result in batch {
                let size = BatchJob.estimatedBytes(result)
                if !results.isEmpty, bytes + size > maxUpdateBytes { break }
                results.append(result)
                bytes += size
            }
            sent += results.count
            try await emit(ProgressUpdate(batchID: job.id, completed: sent, total: job.total, state: .partial, results: results))
        }
    }


    func stopIfAbandoned() async throws(BacktestError) {
        guard let lostAt = connection?.lostAt else { return }
        let lastRead = await job.lastReadAt
        let lastSign = max(lostAt, lastRead ?? lostAt)
        guard NIODeadline.now() - lastSign > abandonAfter else { return }
        let completed = job.summaries.count
        let seconds = abandonAfter.nanoseconds / 1_000_000_000
        throw BacktestError(.cancelled,
            "batch stopped after \(completed) of \(job.total) variants: its connection was lost and no client re-attached within \(seconds) s")
    }
}
