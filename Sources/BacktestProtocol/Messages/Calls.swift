import BacktestCore
import BacktestModel
import CBacktestProto
import NIOCore

/// The method a REQUEST selects, with its argument.
package enum CallMethod: Sendable, Hashable {
    case runBacktest(BacktestRequest)
    case runBatch(BatchRequest)
    /// `knownIndices`: variants whose results the caller holds, left out of the answer.
    case batchStatus(batchID: String, knownIndices: [Int] = [])
    case serverInfo
    case purgeCache
    /// Stops the batch `batchID` from any connection; answered with its state (`CallResult.batchStatus`).
    case cancelBatch(batchID: String)
    /// GetVariantResults: FULL results of a batch's variants, recomputed on demand.
    case variantResults(batchID: String, selection: VariantSelection)
    /// GetIndicators: indicator values of one ticker (issue 15).
    case indicators(IndicatorsRequest)

    /// The method's name in the proto's `service` block, for logs and errors.
    package var name: String {
        switch self {
        case .runBacktest: "RunBacktest"
        case .runBatch: "RunBatch"
        case .batchStatus: "GetBatchStatus"
        case .serverInfo: "GetServerInfo"
        case .purgeCache: "PurgeCache"
        case .cancelBatch: "CancelBatch"
        case .variantResults: "GetVariantResults"
        case .indicators: "GetIndicators"
        }
    }
}

package struct RequestHeader: Sendable, Hashable {
    /// Relative deadline in milliseconds; 0 = the server's maximum.
    package var timeoutMs: UInt32
    package var requestID: String
    package var client: String

    package init(timeoutMs: UInt32 = 0, requestID: String = "", client: String = "") {
        self.timeoutMs = timeoutMs
        self.requestID = requestID
        self.client = client
    }
}

/// The payload of a REQUEST frame.
///
/// Decoding keeps the header even when the method cannot be used, so the server can still echo
/// the request id: `method` is a failure for an unknown method (UNIMPLEMENTED) or an invalid
/// argument (INVALID_ARGUMENT with the field path, e.g. "run_backtest.settings.start_date").
package struct CallRequest: WireMessage {
    package var header: RequestHeader
    package var method: Result<CallMethod, BacktestError>

    package init(header: RequestHeader = RequestHeader(), method: CallMethod) {
        self.header = header
        self.method = .success(method)
    }

    package static func decode(_ bytes: ByteBuffer, limits: DecodeLimits) throws -> CallRequest {
        try PB.callRequest.decodeRequest(bytes, limits: limits, what: "CallRequest") { c, invalidVariants in
            let m = c.pointee
            let header = m.header.map {
                RequestHeader(timeoutMs: $0.pointee.timeout_ms, requestID: string($0.pointee.request_id),
                              client: string($0.pointee.client))
            } ?? RequestHeader()
            do throws(BacktestError) {
                return CallRequest(header: header, method: .success(try method(of: m, invalidVariants: invalidVariants)))
            } catch {
                return CallRequest(header: header, method: .failure(error))
            }
        }
    }

    private init(header: RequestHeader, method: Result<CallMethod, BacktestError>) {
        self.header = header
        self.method = method
    }

    /// `invalidVariants`: RunBatch variants the wire check already failed (by index).
    private static func method(of m: Backtest__V1__CallRequest, invalidVariants: [Int: BacktestError]) throws(BacktestError) -> CallMethod {
        do {
            switch m.method_case {
            case BACKTEST__V1__CALL_REQUEST__METHOD_RUN_BACKTEST:
                let r = try required(m.run_backtest, "run_backtest").pointee
                return .runBacktest(BacktestRequest(
                    strategy: try StrategyConversion.strategy(required(r.strategy, "run_backtest.strategy"), path: "run_backtest.strategy"),
                    settings: try StrategyConversion.settings(required(r.settings, "run_backtest.settings"), path: "run_backtest.settings")))
            case BACKTEST__V1__CALL_REQUEST__METHOD_RUN_BATCH:
                let r = try required(m.run_batch, "run_batch").pointee
                // Each variant decodes on its own: one that cannot (an unknown enum value, a bad
                // string, nesting) fails alone, as one failing validation does.
                var invalid = invalidVariants
                let variants = messages(r.variants, r.n_variants) { variant, index in
                    guard invalid[index] == nil else { return Strategy(positions: []) }
                    do {
                        return try StrategyConversion.strategy(variant, path: FieldPath("run_batch").child("variants", index: index))
                    } catch {
                        invalid[index] = (error as? BacktestError) ?? BacktestError(.internal, "unexpected decoding error")
                        return Strategy(positions: [])
                    }
                }
                var request = BatchRequest(
                    variants: variants,
                    settings: try StrategyConversion.settings(required(r.settings, "run_batch.settings"), path: "run_batch.settings"),
                    maxParallel: Int(r.max_parallel), detail: try SweepConversion.detail(r.detail, path: "run_batch.detail"))
                request.invalidVariants = invalid
                if let grid = r.grid {
                    guard variants.isEmpty else {
                        throw BacktestError.invalidArgument("set either variants or grid, not both", field: "run_batch.grid")
                    }
                    request.grid = try SweepConversion.grid(grid, path: "run_batch.grid")
                }
                return .runBatch(request)
            case BACKTEST__V1__CALL_REQUEST__METHOD_GET_BATCH_STATUS:
                let r = try required(m.get_batch_status, "get_batch_status").pointee
                return .batchStatus(batchID: string(r.batch_id), knownIndices: scalars(r.known_indices, r.n_known_indices).map(Int.init))
            case BACKTEST__V1__CALL_REQUEST__METHOD_GET_SERVER_INFO:
                return .serverInfo
            case BACKTEST__V1__CALL_REQUEST__METHOD_PURGE_CACHE:
                return .purgeCache
            case BACKTEST__V1__CALL_REQUEST__METHOD_CANCEL_BATCH:
                return .cancelBatch(batchID: string(try required(m.cancel_batch, "cancel_batch").pointee.batch_id))
            case BACKTEST__V1__CALL_REQUEST__METHOD_GET_VARIANT_RESULTS:
                return try SweepConversion.variantResultsRequest(required(m.get_variant_results, "get_variant_results"))
            case BACKTEST__V1__CALL_REQUEST__METHOD_GET_INDICATORS:
                return .indicators(try IndicatorConversion.request(required(m.get_indicators, "get_indicators"), path: "get_indicators"))
            default:
                throw BacktestError(.unimplemented, "the request names no method this server knows")
            }
        } catch let error as BacktestError {
            throw error
        } catch {
            throw BacktestError(.internal, "unexpected decoding error")
        }
    }

    package func encode(into buffer: inout ByteBuffer) {
        PB.callRequest.encode(into: &buffer) { m, arena in
            let header = arena.message(PB.requestHeader)
            header.pointee.timeout_ms = self.header.timeoutMs
            header.pointee.request_id = arena.cString(self.header.requestID)
            header.pointee.client = arena.cString(self.header.client)
            m.pointee.header = header
            guard case .success(let method) = method else { return }
            switch method {
            case .runBacktest(let request):
                let r = arena.message(PB.backtestRequest)
                r.pointee.strategy = arena.strategy(request.strategy)
                r.pointee.settings = arena.settings(request.settings)
                m.pointee.method_case = BACKTEST__V1__CALL_REQUEST__METHOD_RUN_BACKTEST
                m.pointee.run_backtest = r
            case .runBatch(let request):
                let r = arena.message(PB.batchRequest)
                r.pointee.n_variants = request.variants.count
                r.pointee.variants = arena.messages(request.variants) { arena.strategy($0) }
                r.pointee.settings = arena.settings(request.settings)
                r.pointee.max_parallel = UInt32(clamping: request.maxParallel)
                r.pointee.detail = SweepConversion.detail(request.detail)
                r.pointee.grid = request.grid.map { arena.grid($0) }
                m.pointee.method_case = BACKTEST__V1__CALL_REQUEST__METHOD_RUN_BATCH
                m.pointee.run_batch = r
            case .batchStatus(let batchID, let knownIndices):
                let r = arena.message(PB.batchStatusRequest)
                r.pointee.batch_id = arena.cString(batchID)
                r.pointee.n_known_indices = knownIndices.count
                r.pointee.known_indices = arena.array(knownIndices.map { UInt32(clamping: $0) })
                m.pointee.method_case = BACKTEST__V1__CALL_REQUEST__METHOD_GET_BATCH_STATUS
                m.pointee.get_batch_status = r
            case .serverInfo:
                m.pointee.method_case = BACKTEST__V1__CALL_REQUEST__METHOD_GET_SERVER_INFO
                m.pointee.get_server_info = arena.message(PB.serverInfoRequest)
            case .purgeCache:
                m.pointee.method_case = BACKTEST__V1__CALL_REQUEST__METHOD_PURGE_CACHE
                m.pointee.purge_cache = arena.message(PB.purgeCacheRequest)
            case .cancelBatch(let batchID):
                let r = arena.message(PB.cancelBatchRequest)
                r.pointee.batch_id = arena.cString(batchID)
                m.pointee.method_case = BACKTEST__V1__CALL_REQUEST__METHOD_CANCEL_BATCH
                m.pointee.cancel_batch = r
            case .variantResults(let batchID, let selection):
                m.pointee.method_case = BACKTEST__V1__CALL_REQUEST__METHOD_GET_VARIANT_RESULTS
                m.pointee.get_variant_results = arena.variantResultsRequest(batchID: batchID, selection: selection)
            case .indicators(let request):
                m.pointee.method_case = BACKTEST__V1__CALL_REQUEST__METHOD_GET_INDICATORS
                m.pointee.get_indicators = arena.indicatorsRequest(request)
            }
        }
    }
}
