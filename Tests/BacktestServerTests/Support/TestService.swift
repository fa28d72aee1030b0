import BacktestCore
import BacktestModel
import BacktestProtocol
import BacktestService
import NIOCore

/// A transport-test service: its behaviour is chosen by the strategy name, and it reports what
/// happened through `events`. It computes nothing; results it returns are echoes of the request,
/// used only to check that values cross the wire intact.
///
/// - "echo": returns a result named after the strategy, with the settings' dates.
/// - "block": waits until cancelled.
/// - "gate": waits for `gate` to open, then echoes.
/// - "big": returns a result with `bigPoints` equity points.
/// - "crash": throws a non-BacktestError (must become INTERNAL).
/// RunBatch emits one update per variant (each variant named as above decides its own behaviour
/// after the update: "block" blocks until cancelled).
struct TestService: BacktestService {
    let events: AsyncStream<ServiceEvent>.Continuation
    let gate: Gate
    var bigPoints = 0

    static func make(bigPoints: Int = 0) -> (TestService, AsyncStream<ServiceEvent>, Gate) {
        let (stream, continuation) = AsyncStream.makeStream(of: ServiceEvent.self)
        let gate = Gate()
        return (TestService(events: continuation, gate: gate, bigPoints: bigPoints), stream, gate)
    }

    struct Crash: Error {}

    func runBacktest(_ request: BacktestRequest, context: CallContext) async throws -> BacktestResult {
        let name = request.strategy.name
        events.yield(.started(name))
        defer { events.yield(.finished(name)) }
        switch name {
        case "block":
            await blockUntilCancelled(name)
            throw CancellationError()
        case "gate":
            await gate.wait()
        case "crash":
            throw Crash()
        default:
            break
        }
        return echo(request.strategy, request.settings, points: name == "big" ? bigPoints : 1)
    }

    func runBatch(_ request: BatchRequest, context: CallContext,
                  emit: @escaping @Sendable (ProgressUpdate) async throws -> Void) async throws {
        events.yield(.started("batch"))
        for (index, variant) in request.variants.enumerated() {
            let result = echo(variant, request.settings, points: variant.name == "big" ? bigPoints : 1)
            try await emit(ProgressUpdate(batchID: "batch-1", completed: index + 1, total: request.variants.count,
                                          state: index + 1 == request.variants.count ? .final : .partial,
                                          results: [VariantResult(index: index, outcome: .success(result))]))
            if variant.name == "block" {
                await blockUntilCancelled("batch")
                throw CancellationError()
            }
        }
        events.yield(.finished("batch"))
    }

    func batchStatus(id: String, knownIndices: Set<Int>, context: CallContext) async throws -> ProgressUpdate {
        throw BacktestError(.notFound, "no batch \(id)", field: "get_batch_status.batch_id")
    }

    func serverInfo() async -> ServerInfo {
        ServerInfo(serverVersion: "test", engine: "none")
    }

    func purgeCache() async throws -> PurgeCacheResult {
        PurgeCacheResult(entriesRemoved: 0, generation: 1)
    }

    func cancelBatch(id: String, context: CallContext) async throws -> ProgressUpdate {
        throw BacktestError(.unimplemented, "CancelBatch is not available on this test service")
    }

    func variantResults(batchID: String, selection: VariantSelection, context: CallContext) async throws -> [VariantResult] {
        throw BacktestError(.unimplemented, "GetVariantResults is not available on this test service")
    }

    func indicators(_ request: IndicatorsRequest, context: CallContext) async throws -> IndicatorsResult {
        throw BacktestError(.unimplemented, "GetIndicators is not available on this test service")
    }

    private func blockUntilCancelled(_ name: String) async {
        // Sleeping here is the behaviour under test (work that only cancellation stops), not a wait
        // for another event.
        try? await Task.sleep(for: .seconds(3600))
        if Task.isCancelled { events.yield(.cancelled(name)) }
    }

    private func echo(_ strategy: Strategy, _ settings: BacktestSettings, points: Int) -> BacktestResult {
        let dates = (0..<points).map { settings.start.advanced(by: $0) }
        return BacktestResult(strategyName: strategy.name, dates: dates, equity: dates.map { _ in settings.initialCapital },
                              benchmark: dates.map { _ in settings.initialCapital }, orders: [], metrics: Metrics(),
                              benchmarkMetrics: Metrics(), warnings: [], stats: RunStatistics(),
                              initialCapital: settings.initialCapital, benchmarkTicker: settings.benchmark,
                              dataSource: "test")
    }
}

extension AsyncStream where Element == ServiceEvent {
    /// Waits for `event` (the suite's time limit bounds a wait that never ends).
    func next(_ event: ServiceEvent) async {
        for await received in self where received == event { return }
    }
}

let testSettings = BacktestSettings(start: TradingDate(iso: "2020-01-02")!, end: TradingDate(iso: "2020-12-31")!)

func strategy(_ name: String) -> Strategy { Strategy(name: name, positions: []) }
