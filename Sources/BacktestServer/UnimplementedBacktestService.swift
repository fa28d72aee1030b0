import BacktestCore
import BacktestModel
import BacktestProtocol
import BacktestService
import NIOCore

/// The service until the engine is wired in: every domain call answers UNIMPLEMENTED (never a
/// fake result); GetServerInfo answers for real.
package struct UnimplementedBacktestService: BacktestService {
    package let serverVersion: String
    private let startedAt = NIODeadline.now()

    package init(serverVersion: String = ServerConfiguration().serverVersion) {
        self.serverVersion = serverVersion
    }

    package func runBacktest(_ request: BacktestRequest, context: CallContext) async throws -> BacktestResult {
        throw BacktestError(.unimplemented, "RunBacktest is not available: the engine is not wired into this server yet")
    }

    package func runBatch(_ request: BatchRequest, context: CallContext,
                         emit: @escaping @Sendable (ProgressUpdate) async throws -> Void) async throws {
        throw BacktestError(.unimplemented, "RunBatch is not available: the engine is not wired into this server yet")
    }

    package func batchStatus(id: String, knownIndices: Set<Int>, context: CallContext) async throws -> ProgressUpdate {
        throw BacktestError(.unimplemented, "GetBatchStatus is not available: the engine is not wired into this server yet")
    }

    package func serverInfo() async -> ServerInfo {
        let uptime = Double((NIODeadline.now() - startedAt).nanoseconds) / 1e9
        return ServerInfo(serverVersion: serverVersion, dataSource: "none", cacheConnected: false, engine: "none",
                          uptimeSeconds: uptime, maxParallel: 0)
    }

    package func purgeCache() async throws -> PurgeCacheResult {
        throw BacktestError(.unimplemented, "PurgeCache is not available: no cache is wired into this server yet")
    }

    package func cancelBatch(id: String, context: CallContext) async throws -> ProgressUpdate {
        throw BacktestError(.unimplemented, "CancelBatch is not available: this server has no batch jobs")
    }

    package func variantResults(batchID: String, selection: VariantSelection, context: CallContext) async throws -> [VariantResult] {
        throw BacktestError(.unimplemented, "GetVariantResults is not available: this server has no batch jobs")
    }

    package func indicators(_ request: IndicatorsRequest, context: CallContext) async throws -> IndicatorsResult {
        throw BacktestError(.unimplemented, "GetIndicators is not available: this server has no market data")
    }
}
