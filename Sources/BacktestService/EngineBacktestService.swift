import BacktestCache
import BacktestCore
import BacktestModel
import BacktestProtocol
import Logging
import MarketData
import NIOCore

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
    private let startedAt = NIODeadline.now()

    package init(pipeline: BacktestPipeline, jobs: BatchJobRegistry = BatchJobRegistry(), maxParallel: Int = 4,
                statusAnswerBytes: Int = Wire.defaultMaxFramePayload / 2,
                abandonAfter: TimeAmount = .seconds(150), serverVersion: String) {
        self.pipeline = pipeline
        self.jobs = jobs
        self.maxParallel = max(1, maxParallel)
        self.statusAnswerBytes = statusAnswerBytes
        self.abandonAfter = abandonAfter
        self.serverVersion = serverVersion
    }

    package func runBacktest(_ request: BacktestRequest, context: CallContext) async throws -> BacktestResult {
        // Vendor fetches plan their attempts within the call's deadline.
        try await FetchDeadline.$current.withValue(Self.fetchDeadline(context.deadline)) {
            try await pipeline.runBacktest(request.strategy, settings: request.settings)
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
        let job = await jobs.create(total: request.variants.count)
        let run = BatchRun(
            request: request, pipeline: pipeline, job: job,
            parallelism: request.maxParallel > 0 ? min(request.maxParallel, maxParallel) : maxParallel,
            deadline: context.deadline, connection: context.connection, abandonAfter: abandonAfter, logger: context.logger)
        let connection = context.connection
        let work = Task {
            try await FetchDeadline.$current.withValue(Self.fetchDeadline(context.deadline)) {
            try await run.run { update in
                guard !connection.isLost else { return }
                do {
                    try await emit(update)
                } catch {
                    if !connection.isLost { throw error }
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

    package func batchStatus(id: String, knownIndices: Set<Int>, context: CallContext) async throws -> ProgressUpdate {
        try await jobs.job(id: id).snapshot(excluding: knownIndices, maxBytes: statusAnswerBytes)
    }

    /// Ends the job CANCELLED at once (what finished stays readable) and cancels its work, which
    /// may still be fetching data: no variant starts after this returns.
    package func cancelBatch(id: String, context: CallContext) async throws -> ProgressUpdate {
        let job = try await jobs.job(id: id)
        let update = await job.cancel()
        context.logger.info("batch \(id): CancelBatch, now \(update.statusText) with \(update.completed) of \(update.total) variants finished")
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
            throw BacktestError(.failedPrecondition, "this server runs without a cache (no Redis configured)")
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
