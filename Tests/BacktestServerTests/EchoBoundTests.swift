import BacktestCore
import BacktestModel
import BacktestProtocol
import BacktestRawClient
import BacktestService
import NIOCore
import Testing

@testable import BacktestServer

/// Every call ends with exactly one RESPONSE whatever its size (issue 12, failure 1): echoed
/// strings are bounded, and an answer too large for a frame becomes a short RESOURCE_EXHAUSTED.
@Suite("Bounded echoes and oversized answers", .timeLimit(.minutes(1)))
struct EchoBoundTests {
    /// Answers that are too large for the 64 KiB frame limit the tests below use: a huge error
    /// message, a huge ServerInfo.
    struct LoudService: BacktestService {
        let inner = UnimplementedBacktestService()
        func runBacktest(_ request: BacktestRequest, context: CallContext) async throws -> BacktestResult {
            throw BacktestError(.invalidArgument, String(repeating: "m", count: 256 << 10), field: "run_backtest.strategy")
        }
        func runBatch(_ request: BatchRequest, context: CallContext,
                      emit: @escaping @Sendable (ProgressUpdate) async throws -> Void) async throws {
            try await inner.runBatch(request, context: context, emit: emit)
        }
        func batchStatus(id: String, knownIndices: Set<Int>, context: CallContext) async throws -> ProgressUpdate {
            try await inner.batchStatus(id: id, knownIndices: knownIndices, context: context)
        }
        func serverInfo() async -> ServerInfo { ServerInfo(serverVersion: "test", engine: String(repeating: "e", count: 256 << 10)) }
        func purgeCache() async throws -> PurgeCacheResult { try await inner.purgeCache() }
        func cancelBatch(id: String, context: CallContext) async throws -> ProgressUpdate {
            try await inner.cancelBatch(id: id, context: context)
        }
        func variantResults(batchID: String, selection: VariantSelection, context: CallContext) async throws -> [VariantResult] {
            try await inner.variantResults(batchID: batchID, selection: selection, context: context)
        }
        func indicators(_ request: IndicatorsRequest, context: CallContext) async throws -> IndicatorsResult {
            try await inner.indicators(request, context: context)
        }
    }

    /// Sends one call on stream 1 and returns its RESPONSE (the connection must stay open).
    static func call(_ request: CallRequest, port: Int) async throws -> CallResponse {
        let (connection, _) = try await RawConnection.handshake(port: port)
        try await connection.sendRequest(1, request)
        guard let frame = await connection.nextFrame(where: { $0.type == .response }) else {
            throw TestFailure("no RESPONSE: the connection closed")
        }
        #expect(frame.streamID == 1)
        await connection.close()
        return try CallResponse.decode(frame.payload)
    }

    @Test func aFourMebibyteRequestIDGetsInvalidArgumentWithoutTheEcho() async throws {
        try await withServer { _, port in
            // The issue's input: the frame just inside 4 MiB.
            let request = CallRequest(header: RequestHeader(requestID: String(repeating: "i", count: 4_194_274)), method: .serverInfo)
            #expect(request.encoded().readableBytes <= Wire.defaultMaxFramePayload)
            let response = try await Self.call(request, port: port)
            #expect(response.status.code == .invalidArgument)
            #expect(response.status.field == "header.request_id")
            #expect(response.header.requestID.isEmpty)
            #expect(response.status.message.count < 200)
            #expect(response.status.message.contains("4194274 bytes"))
        }
    }

    @Test(arguments: [EchoBounds.maxRequestIDBytes, EchoBounds.maxRequestIDBytes + 1])
    func theRequestIDLimitIsExact(length: Int) async throws {
        try await withServer { _, port in
            let id = String(repeating: "r", count: length)
            let response = try await Self.call(CallRequest(header: RequestHeader(requestID: id), method: .serverInfo), port: port)
            if length <= EchoBounds.maxRequestIDBytes {
                #expect(response.status.code == .ok)
                #expect(response.header.requestID == id)
            } else {
                #expect(response.status.code == .invalidArgument)
                #expect(response.header.requestID.isEmpty)
            }
        }
    }

    @Test func aLongClientNameIsRefusedNamingTheField() async throws {
        try await withServer { _, port in
            let header = RequestHeader(requestID: "r1", client: String(repeating: "c", count: 100_000))
            let response = try await Self.call(CallRequest(header: header, method: .serverInfo), port: port)
            #expect(response.status.code == .invalidArgument && response.status.field == "header.client")
            #expect(response.header.requestID == "r1")
        }
    }

    @Test func aLongStrategyNameIsRefusedWithAShortPrefix() async throws {
        let (service, _, _) = TestService.make()
        try await withServer(service: service) { _, port in
            let name = String(repeating: "n", count: 100_000)
            let request = CallRequest(header: RequestHeader(requestID: "r2"),
                                      method: .runBacktest(BacktestRequest(strategy: strategy(name), settings: testSettings)))
            let response = try await Self.call(request, port: port)
            #expect(response.status.code == .invalidArgument)
            #expect(response.status.field == "run_backtest.strategy.name")
            #expect(response.status.message.count < 200)
            #expect(response.header.requestID == "r2")
            // At the limit the name is echoed in the result.
            let fits = String(repeating: "n", count: EchoBounds.maxStrategyNameBytes)
            let ok = try await Self.call(CallRequest(method: .runBacktest(BacktestRequest(strategy: strategy(fits), settings: testSettings))), port: port)
            #expect(ok.status.code == .ok)
            guard case .backtest(let result)? = ok.result else { Issue.record("no result"); return }
            #expect(result.strategyName == fits)
        }
    }

    @Test func aLongVariantNameOrBatchIDIsRefusedNamingTheField() async throws {
        let (service, _, _) = TestService.make()
        try await withServer(service: service) { _, port in
            let batch = BatchRequest(variants: [strategy("echo"), strategy(String(repeating: "v", count: 1000))], settings: testSettings)
            let refused = try await Self.call(CallRequest(method: .runBatch(batch)), port: port)
            #expect(refused.status.code == .invalidArgument && refused.status.field == "run_batch.variants[1].name")
            let status = try await Self.call(CallRequest(method: .batchStatus(batchID: String(repeating: "b", count: 1 << 20))), port: port)
            #expect(status.status.code == .invalidArgument && status.status.field == "get_batch_status.batch_id")
            #expect(status.status.message.count < 200)
        }
    }

    @Test func aResultTooLargeForAFrameIsAShortResourceExhausted() async throws {
        // Echoes of the request grown past the (64 KiB) frame limit: 20,000 equity points.
        let (service, _, _) = TestService.make(bigPoints: 20_000)
        try await withServer({ $0.maxFramePayload = 64 << 10 }, service: service) { _, port in
            let request = CallRequest(header: RequestHeader(requestID: "big-1"),
                                      method: .runBacktest(BacktestRequest(strategy: strategy("big"), settings: testSettings)))
            let response = try await Self.call(request, port: port)
            #expect(response.status.code == .resourceExhausted)
            #expect(response.status.message.count < 120)
            #expect(response.header.requestID == "big-1")
        }
    }

    @Test func aHugeErrorMessageOrServerInfoIsAShortResourceExhausted() async throws {
        try await withServer({ $0.maxFramePayload = 64 << 10 }, service: LoudService()) { _, port in
            let error = try await Self.call(CallRequest(header: RequestHeader(requestID: "e"),
                method: .runBacktest(BacktestRequest(strategy: strategy("x"), settings: testSettings))), port: port)
            #expect(error.status.code == .resourceExhausted && error.status.message.count < 120)
            let info = try await Self.call(CallRequest(header: RequestHeader(requestID: "i"), method: .serverInfo), port: port)
            #expect(info.status.code == .resourceExhausted && info.header.requestID == "i")
        }
    }

    @Test func theSmallestFrameLimitStillCarriesEveryErrorAnswer() async throws {
        try await withServer({ $0.maxFramePayload = ServerConfiguration.minimumMaxFramePayload }) { _, port in
            let id = String(repeating: "r", count: EchoBounds.maxRequestIDBytes)
            let request = CallRequest(header: RequestHeader(requestID: id),
                                      method: .runBacktest(BacktestRequest(strategy: strategy("x"), settings: testSettings)))
            let response = try await Self.call(request, port: port)
            #expect(response.status.code == .unimplemented)
            #expect(response.header.requestID == id)
        }
    }
}
