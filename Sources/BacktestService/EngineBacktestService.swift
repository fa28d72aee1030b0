import BacktestCache
import BacktestCore
import BacktestModel
import BacktestProtocol
import Logging
import MarketData
import NIOCore
import Synchronization

/// The real domain behind the wire: backtests through the `BacktestPipeline`, batches as jobs
/// that stream each variant as it finishes, and the cache's purge.
package struct EngineBacktestService: BacktestService {
    package let pipeline: BacktestPipeline
    package let jobs: BatchJobRegistry
    /// Variants simulated at once per batch when the request does not ask for fewer.
    package let maxParallel: Int
    package let serverVersion: String
    /// Bytes of results one GetBatchStatus answer carries at most (estimated as `BatchJob` does):
    /// half the frame limit, so that a large batch is read back in several answers instead of
    /// failing with RESOURCE_EXHAUSTED.
    package let statusAnswerBytes: Int
    /// How long a batch whose connection was lost runs on without a GetBatchStatus (`BatchRun`).
    package let abandonAfter: TimeAmount
    /// A pause before each variant result of a batch is recorded (`--variant-delay-ms`), so a
    /// demo or a browser test can watch a short batch go from Partial to Final; zero (the
    /// default) for none. The pause is a `Task.sleep`, so a cancelled batch stops at once.
    package let variantDelay: Duration
    private let startedAt = NIODeadline.now()

    package init(pipeline: BacktestPipeline, jobs: BatchJobRegistry = BatchJobRegistry(), maxParallel: Int = 4,
                statusAnswerBytes: Int = Wire.defaultMaxFramePayload / 2,
                abandonAfter: TimeAmount = .seconds(150), variantDelay: Duration = .zero, serverVersion: String) {
        self.pipeline = pipeline
        self.jobs = jobs
        self.maxParallel = max(1, maxParallel)
        self.statusAnswerBytes = statusAnswerBytes
        self.abandonAfter = abandonAfter
        self.variantDelay = variantDelay
        self.serverVersion = serverVersion
    }

    package func runBacktest(_ request: BacktestRequest, context: CallContext) async throws -> BacktestResult {
        // Vendor fetches plan their attempts within the call's deadline; CPU work is admitted
        // fairly between connections (`ComputeThreads`).
        try await FetchDeadline.$current.withValue(Self.fetchDeadline(context.deadline)) {
            try await ComputeThreads.$tenant.withValue(ComputeTenant(context.connection)) {
                try await pipeline.runBacktest(request.strategy, settings: request.settings)
            }
        }
    }

    /// The call's deadline on the clock vendor fetches use; nil for none.
    static func fetchDeadline(_ deadline: NIODeadline) -> ContinuousClock.Instant? {
        deadline == .distantFuture ? nil : ContinuousClock.now + .nanoseconds((deadline - .now()).nanoseconds)
    }

    /// A batch outlives its connection while a client re-attaches: when the connection is lost,
    /// the job runs on (within the call's deadline, and only while GetBatchStatus reads it at least
    /// every `abandonAfter`) so the client can re-attach and read every result;
    /// updates that can no longer be streamed are dropped, the job keeps them. A CANCEL or the
    /// deadline still stop the work: they cancel the call while its connection is alive.
    package func runBatch(
        _ request: BatchRequest, context: CallContext, emit: @escaping @Sendable (ProgressUpdate) async throws -> Void
    ) async throws {
        // Grids are resolved here (bad axes are INVALID_ARGUMENT naming the field); the job keeps
        // the source so GetVariantResults can recompute any variant.
        var plan: GridPlan?
        if let grid = request.grid {
            // Refused by its size before its values are made: resolving a 1,000,000-value axis
            // takes seconds of CPU (a tester's 156-byte grids over the budget took 44 s each).
            let count = try GridPlan.count(of: grid, field: "run_batch.grid")
            let detail = request.detail.resolved(count: count)
            if detail == .summary {
                try jobs.refuseIfOverBudget(
                    total: count, detail: detail,
                    bytes: count * SummaryStore.bytesPerSummary + GridPlan.minimumValueBytes(of: grid)
                        + GridPlan.heldBytes(positions: grid.base.positions.count, copies: 1, document: false))
            }
            plan = try await Self.resolve(grid, on: pipeline, connection: context.connection)
        }
        let total = plan?.count ?? request.variants.count
        let detail = request.detail.resolved(count: total)
        let source = BatchSource(settings: request.settings, variants: request.variants, invalidVariants: request.invalidVariants, grid: plan, detail: detail)
        // The request is decoded and what the batch keeps is counted by the batch budget: the
        // large-request memory its payload reserved goes back before it may wait for admission.
        // Holding it while waiting deadlocked two 4 MB FULL batches (a hostile tester's): the
        // running one waited in that budget for its FULL results' memory, held by the queued one,
        // which waited for the running one's room in the batch budget.
        RequestMemoryBudget.current?.release()
        let job = try await jobs.admit(
            total: total, source: source, estimatedBytes: Self.estimatedBytes(source, frameLimit: pipeline.answerBound.frameLimit), deadline: context.deadline,
            owner: ObjectIdentifier(context.connection))
        let parallelism = request.maxParallel > 0 ? min(request.maxParallel, maxParallel) : maxParallel
        let connection = context.connection
        let sink: @Sendable (ProgressUpdate) async throws -> Void = { update in
            guard !connection.isLost else { return }
            do {
                try await emit(update)
            } catch {
                if !connection.isLost { throw error }
            }
        }
        let work: Task<Void, any Error>
        if detail == .summary, total > 0 {
            var run = SweepBatchRun(
                source: source, pipeline: pipeline, job: job, parallelism: parallelism, connection: context.connection,
                abandonAfter: abandonAfter, logger: context.logger, maxUpdateBytes: statusAnswerBytes)
            run.variantDelay = variantDelay
            work = Task {
                try await FetchDeadline.$current.withValue(Self.fetchDeadline(context.deadline)) {
                    try await ComputeThreads.$tenant.withValue(ComputeTenant(connection)) {
                        try await run.run(deadline: context.deadline, emit: sink)
                    }
                }
            }
        } else {
            var listed = request
            if let plan {
                var expanded: [Strategy] = []
                for index in 0..<plan.count { expanded.append(try plan.strategy(index)) }
                listed.variants = expanded
            }
            var run = BatchRun(
                request: listed, pipeline: pipeline, job: job, parallelism: parallelism,
                deadline: context.deadline, connection: context.connection, abandonAfter: abandonAfter, logger: context.logger)
            run.variantDelay = variantDelay
            work = Task {
                try await FetchDeadline.$current.withValue(Self.fetchDeadline(context.deadline)) {
                    try await ComputeThreads.$tenant.withValue(ComputeTenant(connection)) {
                        try await run.run(emit: sink)
                    }
                }
            }
        }
        await job.onCancel { work.cancel() }
        // The server's deadline timer cancels the call only while the connection is open.
        let deadlineTimer = context.deadline == .distantFuture ? nil : Task {
            try await Task.sleep(for: .nanoseconds(max(0, (context.deadline - .now()).nanoseconds)))
            work.cancel()
        }
        defer { deadlineTimer?.cancel() }
        try await withTaskCancellationHandler {
            try await work.value
        } onCancel: {
            if !connection.isLost { work.cancel() }
        }
    }

    /// `grid` resolved (`GridPlan`) on the compute threads, in the caller's connection's share,
    /// cancelled with the call: resolving decodes axis values (up to 1,000,000 of them; about
    /// 40 µs each where a value is not a plain number), which on the cooperative pool would stall
    /// every other connection's calls. Throws the plan's INVALID_ARGUMENT, or CANCELLED.
    static func resolve(_ grid: Grid, on pipeline: BacktestPipeline, connection: ConnectionState) async throws -> GridPlan {
        let (outcome, _) = try await ComputeThreads.$tenant.withValue(ComputeTenant(connection)) {
            try await pipeline.cpuWork(offload: true) { flag in
                Result { () throws(BacktestError) in try GridPlan(grid, field: "run_batch.grid", cancellation: flag) }
            }
        }
        return try outcome.get()
    }

    /// What a batch's kept results will cost, in `BatchJob.estimatedBytes` units: a summary
    /// each, or for FULL results the per-day arrays over the window (about 252 trading days a
    /// year) and their orders: per position one each rebalance (daily, weekly, monthly) and a
    /// signal change every 20 days, up to what a frame holds (`frameLimit` over 30 bytes an
    /// order: the engine stops a variant whose orders outgrow it). An estimate, not a bound: a
    /// job whose results outgrow it takes more of the budget while there is room, and keeps
    /// summaries beyond (`BatchJob.record`). (A tester's FULL batches of 16 daily-rebalanced
    /// variants were admitted for 2.2 MB each by "an order every 20 days" and kept 65 MB: 5.6 GB
    /// for 86 of them.)
    static func estimatedBytes(_ source: BatchSource, frameLimit: Int?) -> Int {
        // The source (a grid's plan: its axis values and base; listed variants) is kept for the
        // batch's life, retained or running.
        let held = source.heldBytes
        if source.detail == .summary { return source.count * SummaryStore.bytesPerSummary + held }
        let days = max(1, source.settings.start.distance(to: source.settings.end) * 252 / 365)
        let maxOrders = min(frameLimit ?? .max, Int.max / 4096) / 30  // the cap keeps the sums below from overflowing
        func bytes(_ strategy: Strategy) -> Int {
            let rebalances = switch strategy.rebalance {
            case .daily: days
            case .weekly: days / 5
            case .monthly: days / 21
            case .none: 0
            }
            let orders = strategy.positions.count.multipliedReportingOverflow(by: rebalances + days / 20)
            return 1024 + days * 24 + (orders.overflow ? maxOrders : min(orders.partialValue, maxOrders)) * 96
        }
        // A grid's variants share the base's positions and rebalancing.
        let total = source.grid.map { source.count.multipliedReportingOverflow(by: bytes($0.grid.base)) }
            ?? source.variants.reduce((partialValue: 0, overflow: false)) { sum, variant in
                let next = sum.partialValue.addingReportingOverflow(bytes(variant))
                return (next.partialValue, sum.overflow || next.overflow)
            }
        let withHeld = total.partialValue.addingReportingOverflow(held)
        return total.overflow || withHeld.overflow ? .max : withHeld.partialValue
    }

    /// FULL results recomputed from the same data: the shared phase for the chosen variants,
    /// then each through the same engine path as the batch's FULL results.
    package func variantResults(batchID: String, selection: VariantSelection, context: CallContext) async throws -> [VariantResult] {
        let job = try await jobs.job(id: batchID, field: "get_variant_results.batch_id")
        guard let source = job.source else {
            throw BacktestError(.failedPrecondition, "batch \(quotedInput(batchID, limit: 64)) keeps no request to recompute from", field: "get_variant_results.batch_id")
        }
        let indices: [Int]
        switch selection {
        case .indices(let asked):
            guard asked.count <= Self.maxVariantResults else {
                throw BacktestError.invalidArgument("at most \(Self.maxVariantResults) variants per call, not \(asked.count)", field: "get_variant_results.indices")
            }
            indices = asked
        case .best(let metric, let count):
            guard count <= Self.maxVariantResults else {
                throw BacktestError.invalidArgument("at most \(Self.maxVariantResults) variants per call, not \(count)", field: "get_variant_results.best_count")
            }
            let ranked: [(index: Int, value: Double)] = await job.ranked(by: { metric.value($0) })
            let sorted = ranked.sorted { (a: (index: Int, value: Double), b: (index: Int, value: Double)) -> Bool in
                if a.value == b.value { return a.index < b.index }
                return metric.ranksBefore(a.value, b.value)
            }
            indices = sorted.prefix(count).map { $0.index }
        }
        var strategies: [Strategy] = []
        for (i, index) in indices.enumerated() {
            strategies.append(try source.strategy(index, field: "get_variant_results.indices[\(i)]"))
        }
        guard !strategies.isEmpty else { return [] }
        // The one execution path (validate once, shared phase once, simulations on the compute
        // threads), as the batch's own FULL results took.
        let chosen = indices
        let found = Mutex((results: [Int: VariantResult](), bytes: 0))
        // The answer must fit a frame: gathering stops once the results gathered clearly would
        // not (one call asking for 64 FULL results of 3.5 MB built them all, 1.6 GB, before the
        // frame check refused the answer; 8 such calls at once took 5.5 GB). The size is an
        // estimate, a few percent above the encoding: a quarter's margin lets every answer that
        // fits through (the frame check after encoding refuses the rest exactly).
        let frameLimit = pipeline.answerBound.frameLimit ?? .max
        let gatherLimit = frameLimit.addingReportingOverflow(frameLimit / 4)
        let record: @Sendable (VariantResult) throws -> Void = { result in
            let index = chosen[result.index]
            var kept = result
            kept.index = index
            kept.parameters = source.grid?.parameters(of: index) ?? []
            let (count, bytes) = found.withLock { found in
                found.results[result.index] = kept
                found.bytes += kept.encodedSizeEstimate
                return (found.results.count, found.bytes)
            }
            guard gatherLimit.overflow || bytes <= gatherLimit.partialValue else {
                throw BacktestError(.resourceExhausted,
                    "the FULL results asked for do not fit in one answer: \(count) of the \(chosen.count) variants already take about \(bytes) bytes, above the frame limit of \(frameLimit); ask for fewer indices at a time",
                    field: "get_variant_results.indices")
            }
        }
        _ = try await ComputeThreads.$tenant.withValue(ComputeTenant(context.connection)) {
            try await pipeline.execute(
                strategies, settings: source.settings, parallelism: maxParallel, label: "batch \(LogText(batchID)) GetVariantResults",
                paths: .runBatch(variants: chosen),
                rejected: { try record($0) }, finished: { try record($0) })
        }
        let byPosition = found.withLock { $0.results }
        var answers: [VariantResult] = []
        for position in indices.indices {
            guard let answer = byPosition[position] else {
                throw BacktestError(.internal, "variant \(indices[position]) ended without a result")
            }
            answers.append(answer)
        }
        return answers
    }

    /// Most FULL results one GetVariantResults call recomputes.
    package static let maxVariantResults = 64

    package func batchStatus(id: String, knownIndices: Set<Int>, context: CallContext) async throws -> ProgressUpdate {
        let job = try await jobs.job(id: id, field: "get_batch_status.batch_id")
        // The answer is built whole before it is encoded, and waits for a compute thread to be:
        // about 2.4 times its encoded size as values, plus the encoding. A large one reserves
        // that from the request memory budget first (a hostile tester's 40 connections x 8 status
        // reads of a 1,000,000-variant grid held 329 MB of built answers at once, 685 MB peak).
        let expected = min(statusAnswerBytes, max(0, await job.completed - knownIndices.count) * Self.statusBytesPerResult)
        let held = expected * Self.builtAnswerFactor
        if RequestMemoryBudget.counts(analysisBytes: 0, answerBytes: held) {
            try await RequestMemoryBudget.current?.grow(to: held)
        }
        return await job.snapshot(excluding: knownIndices, maxBytes: statusAnswerBytes)
    }

    /// About what one result of a GetBatchStatus answer encodes to (a summary with its
    /// parameters; `VariantResult.encodedSizeEstimate` is an upper estimate of the same).
    static let statusBytesPerResult = 600
    /// Memory an answer holds while it is built and encoded, per encoded byte (measured with
    /// heaptrack: 6,078 summaries of a 1,000,000-variant grid, 1.5 MB encoded, held 3.6 MB as values).
    static let builtAnswerFactor = 3

    package func finishedResults(batchID: String, positions: [Int], context: CallContext) async throws -> ProgressUpdate {
        try await jobs.job(id: batchID, field: "batch_id").finished(at: positions)
    }

    /// Ends the job CANCELLED at once (what finished stays readable) and cancels its work, which
    /// may still be fetching data: no variant starts after this returns.
    package func cancelBatch(id: String, context: CallContext) async throws -> ProgressUpdate {
        let job = try await jobs.job(id: id, field: "cancel_batch.batch_id")
        let update = await job.cancel()
        context.logger.info("batch \(LogText(id)): CancelBatch, now \(update.statusText) with \(update.completed) of \(update.total) variants finished")
        return update
    }

    package func serverInfo() async -> ServerInfo {
        var generation: UInt64 = 0
        var connected = false
        var figures: CacheStatsInfo?
        if let cache = pipeline.cache {
            // Connected means Redis answered; the in-process layer alone does not count.
            (connected, generation) = await cache.withSession(countsAsRequest: false) { session in
                (session.isUsingRedis, UInt64(max(0, session.generation)))
            }.value
            figures = CacheStatsInfo(cache.figures())
        }
        return ServerInfo(
            serverVersion: serverVersion, dataSource: pipeline.source.name, cacheConnected: connected,
            engine: pipeline.engines.useNewEngine ? pipeline.engines.primary.name : pipeline.engines.fallback.name,
            uptimeSeconds: Double((NIODeadline.now() - startedAt).nanoseconds) / 1e9, maxParallel: maxParallel,
            cacheGeneration: generation, cache: figures)
    }

    package func purgeCache() async throws -> PurgeCacheResult {
        guard let cache = pipeline.cache else {
            throw BacktestError(.failedPrecondition, "this server runs without a cache (BACKTESTD_CACHE is off)")
        }
        do {
            let result = try await cache.purge(reason: "manual")
            pipeline.logger.info("Cache purged on request (\(result.removedEntries) entries)")
            return PurgeCacheResult(entriesRemoved: UInt64(result.removedEntries), generation: UInt64(max(0, result.generation)))
        } catch {
            throw BacktestError(.unavailable, "cache purge failed", cause: error)
        }
    }
}

extension CacheStatsInfo {
    /// The wire form of the cache's figures.
    init(_ figures: CacheFigures) {
        self.init()
        hits = figures.hits
        misses = figures.misses
        hitRate = figures.hitRate
        rejectedValues = figures.rejectedValues
        generationBytes = figures.generationBytes
        generationKeys = figures.generationKeys
        localBytes = figures.localBytes
        localEntries = figures.localEntries
        lastPurgeUnixSeconds = figures.lastPurgeUnixSeconds
        lastPurgeReason = figures.lastPurgeReason
        lastPurgeRemoved = figures.lastPurgeRemovedEntries
        requests = figures.sessions
        requestsWithoutRedis = figures.sessionsWithoutRedis
    }
}

extension EngineBacktestService {
    /// GetIndicators through the pipeline's market-data path (`BacktestPipeline.indicators`):
    /// the same source, cache session, indicator cache and calculator as backtests.
    package func indicators(_ request: IndicatorsRequest, context: CallContext) async throws -> IndicatorsResult {
        try await FetchDeadline.$current.withValue(Self.fetchDeadline(context.deadline)) {
            try await pipeline.indicators(request)
        }
    }
}
