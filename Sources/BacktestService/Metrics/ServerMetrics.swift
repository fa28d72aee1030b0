import BacktestCache
import BacktestCore
import BacktestModel
import BacktestProtocol
import NIOConcurrencyHelpers
import Prometheus

/// The server's figures in Prometheus' text format (swift-prometheus renders it): calls by
/// method and status, call latencies, batches and their variants, and the cache's figures
/// (hits, misses, hit rate, rejected values, bytes and keys of the generation, in-process size,
/// last purge). Served on `GET /metrics` by `MetricsHTTPService` when `--metrics-port` is set.
///
/// Names follow Prometheus' conventions: `backtestd_` prefix, `_total` counters, base units
/// (seconds, bytes).
package final class ServerMetrics: Sendable {
    package let registry = PrometheusCollectorRegistry()
    let cache: MarketDataCache?
    /// The cache's counters as last exported: a scrape adds what changed since.
    private let exported = NIOLockedValueBox(CacheFigures())

    /// Latency buckets of calls, seconds: a warm backtest answers in milliseconds, a cold one in
    /// hundreds, a batch in seconds to minutes.
    static let latencyBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
        .seconds(30), .seconds(60), .seconds(300),
    ]

    package init(cache: MarketDataCache?) {
        self.cache = cache
    }

    /// One finished call: its method ("RunBacktest", …), status and duration.
    package func recordCall(method: String, status: StatusCode, duration: Duration) {
        registry.makeCounter(
            name: "backtestd_calls_total", labels: [("method", method), ("code", status.description)],
            help: "Calls answered, by method and status code").increment()
        registry.makeDurationHistogram(
            name: "backtestd_call_duration_seconds", labels: [("method", method)], buckets: Self.latencyBuckets,
            help: "Time from the call's start in the service to its answer").record(duration)
    }

    /// One batch started with `variants` strategies.
    package func recordBatch(variants: Int) {
        registry.makeCounter(name: "backtestd_batches_total", help: "Batches started").increment()
        registry.makeCounter(name: "backtestd_batch_variants_total", help: "Variants in the batches started")
            .increment(by: Int64(max(0, variants)))
    }

    /// The text exposition, with the cache's figures brought up to date first.
    package func render() -> [UInt8] {
        syncCache()
        var bytes: [UInt8] = []
        registry.emit(into: &bytes)
        return bytes
    }

    private func syncCache() {
        guard let cache else { return }
        let now = cache.figures()
        let before = exported.withLockedValue { last in
            defer { last = now }
            return last
        }
        func add(_ name: String, _ help: String, _ current: UInt64, _ previous: UInt64) {
            let counter = registry.makeCounter(name: name, help: help)
            if current > previous { counter.increment(by: Int64(current - previous)) }
        }
        add("backtestd_cache_hits_total", "Month-of-bars and indicator lookups answered by the cache", now.hits, before.hits)
        add("backtestd_cache_misses_total", "Lookups that went to the data source", now.misses, before.misses)
        add("backtestd_cache_rejected_values_total", "Corrupt values or values under another key, not served",
            now.rejectedValues, before.rejectedValues)
        add("backtestd_cache_requests_total", "Requests that opened the cache", now.sessions, before.sessions)
        add("backtestd_cache_requests_without_redis_total", "Requests that found Redis unreachable",
            now.sessionsWithoutRedis, before.sessionsWithoutRedis)
        func set(_ name: String, _ help: String, _ value: Double) {
            registry.makeGauge(name: name, help: help).set(value)
        }
        set("backtestd_cache_hit_ratio", "hits / (hits + misses) since the server started", now.hitRate)
        set("backtestd_cache_generation", "Cache generation in use", Double(now.generation))
        set("backtestd_cache_generation_bytes", "Bytes this server wrote to Redis in the current generation", Double(now.generationBytes))
        set("backtestd_cache_generation_keys", "Keys this server wrote to Redis in the current generation", Double(now.generationKeys))
        set("backtestd_cache_local_bytes", "Size of the in-process layer", Double(now.localBytes))
        set("backtestd_cache_local_entries", "Entries in the in-process layer", Double(now.localEntries))
        set("backtestd_cache_redis_up", "1 while Redis answers", now.redisAvailable ? 1 : 0)
        set("backtestd_cache_last_purge_timestamp_seconds", "Unix time of this server's last purge (0: none)", Double(now.lastPurgeUnixSeconds))
        set("backtestd_cache_last_purge_removed_keys", "Keys the last purge's sweep removed", Double(now.lastPurgeRemovedEntries))
        if !now.lastPurgeReason.isEmpty {
            registry.makeGauge(
                name: "backtestd_cache_last_purge_info", labels: [("reason", now.lastPurgeReason)],
                help: "1 for the reason of this server's last purge").set(1.0)
        }
    }
}

/// A `BacktestService` that records every call in `metrics` and passes it on.
package struct MeteredBacktestService: BacktestService {
    package let base: any BacktestService
    package let metrics: ServerMetrics

    package init(_ base: any BacktestService, metrics: ServerMetrics) {
        self.base = base
        self.metrics = metrics
    }

    private func metered<T>(_ method: String, _ work: () async throws -> T) async throws -> T {
        let started = ContinuousClock.now
        do {
            let value = try await work()
            metrics.recordCall(method: method, status: .ok, duration: ContinuousClock.now - started)
            return value
        } catch {
            let code: StatusCode = (error as? BacktestError)?.code ?? (error is CancellationError ? .cancelled : .internal)
            metrics.recordCall(method: method, status: code, duration: ContinuousClock.now - started)
            throw error
        }
    }

    package func runBacktest(_ request: BacktestRequest, context: CallContext) async throws -> BacktestResult {
        try await metered("RunBacktest") { try await base.runBacktest(request, context: context) }
    }

    package func runBatch(
        _ request: BatchRequest, context: CallContext, emit: @escaping @Sendable (ProgressUpdate) async throws -> Void
    ) async throws {
        metrics.recordBatch(variants: request.grid?.count ?? request.variants.count)
        try await metered("RunBatch") { try await base.runBatch(request, context: context, emit: emit) }
    }

    package func batchStatus(id: String, knownIndices: Set<Int>, context: CallContext) async throws -> ProgressUpdate {
        try await metered("GetBatchStatus") { try await base.batchStatus(id: id, knownIndices: knownIndices, context: context) }
    }

    package func serverInfo() async -> ServerInfo {
        let started = ContinuousClock.now
        let info = await base.serverInfo()
        metrics.recordCall(method: "GetServerInfo", status: .ok, duration: ContinuousClock.now - started)
        return info
    }

    package func purgeCache() async throws -> PurgeCacheResult {
        try await metered("PurgeCache") { try await base.purgeCache() }
    }

    package func cancelBatch(id: String, context: CallContext) async throws -> ProgressUpdate {
        try await metered("CancelBatch") { try await base.cancelBatch(id: id, context: context) }
    }

    package func variantResults(batchID: String, selection: VariantSelection, context: CallContext) async throws -> [VariantResult] {
        try await metered("GetVariantResults") { try await base.variantResults(batchID: batchID, selection: selection, context: context) }
    }

    package func finishedResults(batchID: String, positions: [Int], context: CallContext) async throws -> ProgressUpdate {
        try await base.finishedResults(batchID: batchID, positions: positions, context: context)
    }

    package func indicators(_ request: IndicatorsRequest, context: CallContext) async throws -> IndicatorsResult {
        try await metered("GetIndicators") { try await base.indicators(request, context: context) }
    }
}
