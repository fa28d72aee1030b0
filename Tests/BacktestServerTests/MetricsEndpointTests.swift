import BacktestCache
import BacktestCore
import BacktestModel
import BacktestProtocol
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

@testable import BacktestServer
@testable import BacktestService

/// `GET /metrics` serves the Prometheus text format: calls, latencies, batches and the cache's
/// figures; other paths are 404.
@Suite struct MetricsEndpointTests {
    /// Reads everything the server sends after one request, until it closes.
    final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let received = NIOLockedValueBox<[UInt8]>([])
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            received.withLockedValue { $0 += Array(buffer.readableBytesView) }
        }
    }

    func get(_ path: String, port: Int) async throws -> String {
        let collector = Collector()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) } }
            .connect(host: "127.0.0.1", port: port).get()
        try await channel.writeAndFlush(ByteBuffer(string: "GET \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
        try await channel.closeFuture.get()
        return String(decoding: collector.received.withLockedValue { $0 }, as: UTF8.self)
    }

    @Test func metricsAreServedInPrometheusTextFormat() async throws {
        let cache = MarketDataCache(redis: nil)
        let metrics = ServerMetrics(cache: cache)
        metrics.recordCall(method: "RunBacktest", status: .ok, duration: .milliseconds(3))
        metrics.recordCall(method: "RunBacktest", status: .unavailable, duration: .seconds(2))
        metrics.recordBatch(variants: 12)
        let port = NIOLockedValueBox<Int?>(nil)
        let service = MetricsHTTPService(metrics: metrics, port: 0, bound: { bound in port.withLockedValue { $0 = bound } })
        let running = Task { try await service.run() }
        defer { running.cancel() }
        // A generous safety net: on a loaded machine binding can take a while to be scheduled.
        let deadline = ContinuousClock.now + .seconds(60)
        while port.withLockedValue({ $0 }) == nil, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        let bound = try #require(port.withLockedValue { $0 })

        let page = try await get("/metrics", port: bound)
        #expect(page.hasPrefix("HTTP/1.1 200"))
        #expect(page.contains("text/plain; version=0.0.4"))
        #expect(page.contains(#"backtestd_calls_total{method="RunBacktest",code="OK"} 1"#))
        #expect(page.contains(#"backtestd_calls_total{method="RunBacktest",code="UNAVAILABLE"} 1"#))
        #expect(page.contains(#"backtestd_call_duration_seconds_count{method="RunBacktest"} 2"#))
        #expect(page.contains("backtestd_batch_variants_total 12"))
        for name in ["backtestd_cache_hits_total", "backtestd_cache_misses_total", "backtestd_cache_hit_ratio",
                     "backtestd_cache_generation_bytes", "backtestd_cache_generation_keys", "backtestd_cache_last_purge_timestamp_seconds"] {
            #expect(page.contains("\n\(name) "), "\(name) is exported")
        }
        #expect(try await get("/other", port: bound).hasPrefix("HTTP/1.1 404"))
    }
}

/// The metered wrapper passes every call on: a CancelBatch through it reaches the service (it
/// once fell to a protocol default that answered UNIMPLEMENTED).
@Suite("Metered service")
struct MeteredServiceTests {
    struct CancellingService: BacktestService {
        func runBacktest(_ request: BacktestRequest, context: CallContext) async throws -> BacktestResult {
            throw BacktestError(.unimplemented, "not in this test")
        }
        func runBatch(_ request: BatchRequest, context: CallContext, emit: @escaping @Sendable (ProgressUpdate) async throws -> Void) async throws {
            throw BacktestError(.unimplemented, "not in this test")
        }
        func batchStatus(id: String, knownIndices: Set<Int>, context: CallContext) async throws -> ProgressUpdate {
            throw BacktestError(.unimplemented, "not in this test")
        }
        func serverInfo() async -> ServerInfo { ServerInfo(serverVersion: "test") }
        func purgeCache() async throws -> PurgeCacheResult { PurgeCacheResult(entriesRemoved: 0, generation: 0) }
        func cancelBatch(id: String, context: CallContext) async throws -> ProgressUpdate {
            ProgressUpdate(batchID: id, completed: 3, total: 8, state: .cancelled)
        }
        func variantResults(batchID: String, selection: VariantSelection, context: CallContext) async throws -> [VariantResult] {
            throw BacktestError(.unimplemented, "not in this test")
        }
        func indicators(_ request: IndicatorsRequest, context: CallContext) async throws -> IndicatorsResult {
            IndicatorsResult(ticker: request.ticker, adjustment: request.adjustment, dates: [], close: [], series: [])
        }
    }

    @Test func cancelBatchIsForwarded() async throws {
        let metered = MeteredBacktestService(CancellingService(), metrics: ServerMetrics(cache: nil))
        let answer = try await metered.cancelBatch(id: "b-1", context: CallContext(streamID: 1, logger: Logger(label: "test")))
        #expect(answer.batchID == "b-1" && answer.completed == 3 && answer.state == .cancelled)
    }

    @Test func getIndicatorsIsForwardedAndCounted() async throws {
        let metrics = ServerMetrics(cache: nil)
        let metered = MeteredBacktestService(CancellingService(), metrics: metrics)
        let answer = try await metered.indicators(
            IndicatorsRequest(ticker: "XOM", series: ["sma:5"], adjustment: .all), context: CallContext(streamID: 1, logger: Logger(label: "test")))
        #expect(answer.ticker == "XOM" && answer.adjustment == .all)
        let page = String(decoding: metrics.render(), as: UTF8.self)
        #expect(page.contains(#"backtestd_calls_total{method="GetIndicators",code="OK"} 1"#))
    }
}
