import BacktestCore
import BacktestModel
import BacktestProtocol
import NIOCore
import Testing

/// Hand-written protobuf wire bytes (independent of protobuf-c's encoder) for decoding tests.
enum ProtoBytes {
    static func varint(_ value: UInt64) -> [UInt8] {
        var value = value
        var out: [UInt8] = []
        repeat {
            var byte = UInt8(value & 0x7F)
            value >>= 7
            if value != 0 { byte |= 0x80 }
            out.append(byte)
        } while value != 0
        return out
    }
    static func field(_ number: UInt64, _ bytes: [UInt8]) -> [UInt8] {
        varint(number << 3 | 2) + varint(UInt64(bytes.count)) + bytes
    }
    static func varintField(_ number: UInt64, _ value: UInt64) -> [UInt8] {
        varint(number << 3) + varint(value)
    }
    static func string(_ number: UInt64, _ text: String) -> [UInt8] { field(number, Array(text.utf8)) }
}

@Suite("Protobuf bridge")
struct MessageCodecTests {
    static let sample = Strategy(
        name: "golden cross", positions: [
            Position(ticker: "SPY", weight: 0.5,
                     entry: .compare(lhs: .series(SeriesRef(source: .indicator(IndicatorSpec(type: "sma", params: [50])))),
                                     op: .crossesAbove,
                                     rhs: .series(SeriesRef(ticker: "SPY", source: .indicator(IndicatorSpec(type: "macd", params: [12, 26, 9], output: "signal"))))),
                     exit: .not(.any([.compare(lhs: .series(SeriesRef(source: .field(.close))), op: .less, rhs: .number(100)),
                                      .all([.compare(lhs: .number(1), op: .greaterOrEqual, rhs: .number(2))])]))),
            Position(ticker: "TLT", weight: 0.25, entry: .compare(lhs: .series(SeriesRef(source: .field(.volume))), op: .greater, rhs: .number(0))),
        ], fill: .close, commissionBps: 1.5, slippageBps: 2, rebalance: .monthly, allowLeverage: true)
    static let settings = BacktestSettings(start: TradingDate(iso: "2005-01-03")!, end: TradingDate(iso: "2020-12-31")!,
                                           initialCapital: 50_000, adjustment: .all, benchmark: "QQQ")

    @Test func runBacktestRequestRoundTrips() throws {
        let request = CallRequest(header: RequestHeader(timeoutMs: 1500, requestID: "r-1", client: "tests"),
                                  method: .runBacktest(BacktestRequest(strategy: Self.sample, settings: Self.settings)))
        let decoded = try CallRequest.decode(request.encoded())
        #expect(decoded.header == request.header)
        #expect(try decoded.method.get() == request.method.get())
    }

    @Test func runBatchRequestRoundTrips() throws {
        let method = CallMethod.runBatch(BatchRequest(variants: [Self.sample, Strategy(name: "b", positions: [])],
                                                      settings: Self.settings, maxParallel: 4))
        #expect(try CallRequest.decode(CallRequest(method: method).encoded()).method.get() == method)
    }

    @Test func cancelBatchRequestRoundTripsAndIsFieldFifteen() throws {
        let method = CallMethod.cancelBatch(batchID: "0123456789abcdef0123456789abcdef")
        #expect(try CallRequest.decode(CallRequest(method: method).encoded()).method.get() == method)
        #expect(method.name == "CancelBatch")
        // CallRequest { cancel_batch (15) { batch_id (1): "b1" } }, written by hand.
        let bytes = ProtoBytes.field(15, ProtoBytes.string(1, "b1"))
        var buffer = ByteBuffer()
        buffer.writeBytes(bytes)
        #expect(try CallRequest.decode(buffer).method.get() == .cancelBatch(batchID: "b1"))
    }

    @Test func protoDefaultsBecomeModelDefaults() throws {
        // settings { start_date: "2010-01-04", end_date: "2010-02-01" } and an empty strategy.
        let settings = ProtoBytes.string(1, "2010-01-04") + ProtoBytes.string(2, "2010-02-01")
        let bytes = ProtoBytes.field(10, ProtoBytes.field(1, []) + ProtoBytes.field(2, settings))
        let method = try CallRequest.decode(ByteBuffer(bytes: bytes)).method.get()
        guard case .runBacktest(let request) = method else { Issue.record("wrong method \(method)"); return }
        #expect(request.settings.initialCapital == 100_000)
        #expect(request.settings.benchmark == "SPY")
        #expect(request.settings.adjustment == .split)
        #expect(request.strategy.fill == .nextOpen)
    }

    @Test func badDateNamesTheField() throws {
        let settings = ProtoBytes.string(1, "2010-13-01") + ProtoBytes.string(2, "2010-02-01")
        let bytes = ProtoBytes.field(10, ProtoBytes.field(1, []) + ProtoBytes.field(2, settings))
        let decoded = try CallRequest.decode(ByteBuffer(bytes: bytes))
        #expect(throws: BacktestError.invalidArgument("'2010-13-01' is not a date of the form YYYY-MM-DD",
                                                      field: "run_backtest.settings.start_date")) { try decoded.method.get() }
    }

    @Test func unknownEnumValueNamesTheField() throws {
        let settings = ProtoBytes.string(1, "2010-01-04") + ProtoBytes.string(2, "2010-02-01")
        let strategy = ProtoBytes.varintField(3, 7)  // fill = 7
        let bytes = ProtoBytes.field(10, ProtoBytes.field(1, strategy) + ProtoBytes.field(2, settings))
        let error = try #require(CallRequest.decode(ByteBuffer(bytes: bytes)).method.failureValue)
        #expect(error.code == .invalidArgument)
        #expect(error.field == "run_backtest.strategy.fill")
    }

    @Test func unsetConditionOneofNamesTheField() throws {
        let settings = ProtoBytes.string(1, "2010-01-04") + ProtoBytes.string(2, "2010-02-01")
        let position = ProtoBytes.string(1, "SPY") + ProtoBytes.field(3, [])  // entry {} with no kind
        let strategy = ProtoBytes.field(2, position)
        let bytes = ProtoBytes.field(10, ProtoBytes.field(1, strategy) + ProtoBytes.field(2, settings))
        let error = try #require(CallRequest.decode(ByteBuffer(bytes: bytes)).method.failureValue)
        #expect(error.field == "run_backtest.strategy.positions[0].entry")
    }

    @Test func missingMethodIsUnimplementedAndKeepsTheRequestID() throws {
        let bytes = ProtoBytes.field(1, ProtoBytes.string(2, "abc")) + ProtoBytes.field(99, [1, 2])
        let decoded = try CallRequest.decode(ByteBuffer(bytes: bytes))
        #expect(decoded.header.requestID == "abc")
        #expect(decoded.method.failureValue?.code == .unimplemented)
    }

    @Test func garbageIsInvalidArgument() {
        #expect(throws: BacktestError.self) { try CallRequest.decode(ByteBuffer(bytes: [0xFF, 0xFF, 0xFF])) }
        #expect((try? CallRequest.decode(ByteBuffer(bytes: [0x0A, 0x10]))) == nil)  // length past the end
    }

    @Test func deepNestingIsRejectedBeforeUnpacking() throws {
        // condition { not { not { ... } } } nested 10,000 deep: would recurse protobuf-c off the stack.
        var condition: [UInt8] = []
        for _ in 0..<10_000 { condition = ProtoBytes.field(4, condition) }
        let bytes = ProtoBytes.field(10, ProtoBytes.field(1, ProtoBytes.field(2, ProtoBytes.field(3, condition))))
        let error = try #require(throws: BacktestError.self) { try CallRequest.decode(ByteBuffer(bytes: bytes)) }
        #expect(error.code == .invalidArgument)
        #expect(error.message.contains("deeper"))
    }

    @Test func memoryBudgetFailsCleanly() throws {
        // 100,000 empty variants: ~200 KB on the wire, several MB once unpacked.
        let variants = [UInt8](repeating: 0, count: 0) + Array(repeating: ProtoBytes.field(1, []), count: 100_000).flatMap { $0 }
        let bytes = ProtoBytes.field(11, variants)
        let limits = DecodeLimits(memoryBudget: 1 << 20)
        let error = try #require(throws: BacktestError.self) { try CallRequest.decode(ByteBuffer(bytes: bytes), limits: limits) }
        #expect(error.code == .resourceExhausted)
        // The same bytes decode under a generous budget (the failure was the budget, not the input).
        #expect((try? CallRequest.decode(ByteBuffer(bytes: bytes), limits: DecodeLimits(memoryBudget: 1 << 30))) != nil)
    }

    @Test func responseWithResultRoundTrips() throws {
        let day = TradingDate(iso: "2020-01-02")!
        var metrics = Metrics()
        metrics.sharpe = 1.25
        metrics.tradeCount = 3
        var stats = RunStatistics()
        stats.cacheHits = 3
        stats.engine = "v2"
        let result = BacktestResult(
            strategyName: "s", dates: [day, day.advanced(by: 1)], equity: [100, 101.5], benchmark: [100, 99],
            orders: [Order(date: day, ticker: "SPY", side: .sell, quantity: 1.5, price: 320.25, commission: 0.1)],
            metrics: metrics, benchmarkMetrics: Metrics(), warnings: [BacktestWarning(.missingBars, tickers: ["MSFT"], dates: [TradingDate(iso: "2013-03-05")!, TradingDate(iso: "2013-03-07")!], message: "w")], stats: stats, initialCapital: 100,
            benchmarkTicker: "SPY", dataSource: "demo")
        let response = CallResponse(header: ResponseHeader(requestID: "x", serverVersion: "1"), result: .backtest(result))
        let decoded = try CallResponse.decode(response.encoded())
        #expect(decoded.status == .ok)
        guard case .backtest(let back)? = decoded.result else { Issue.record("no result"); return }
        #expect(back == result)
    }

    @Test func stopsShortsSizingAndOrderReasonsRoundTrip() throws {
        var strategy = Self.sample
        strategy.positions[0].direction = .short
        strategy.positions[0].sizing = .risk
        strategy.positions[0].size = 0.01
        strategy.positions[0].exits = PriceExits(stopLoss: 2, takeProfit: 3, trailingStop: 2.5, atrPeriod: 14, maxBars: 20)
        strategy.positions[1].sizing = .cash
        strategy.positions[1].size = 25_000
        strategy.positions[1].exits = PriceExits(takeProfit: 0.1)
        let method = CallMethod.runBacktest(BacktestRequest(strategy: strategy, settings: Self.settings))
        #expect(try CallRequest.decode(CallRequest(method: method).encoded()).method.get() == method)
        let day = TradingDate(iso: "2020-01-02")!
        let orders = OrderReason.allCases.map { Order(date: day, ticker: "SPY", side: .buy, quantity: 1, price: 2, commission: 0, reason: $0) }
        let result = BacktestResult(
            strategyName: "s", dates: [day], equity: [100], benchmark: [100], orders: orders, metrics: Metrics(),
            benchmarkMetrics: Metrics(), warnings: [], stats: RunStatistics(), initialCapital: 100, benchmarkTicker: "SPY", dataSource: "demo")
        let decoded = try CallResponse.decode(CallResponse(header: ResponseHeader(requestID: "x", serverVersion: "1"), result: .backtest(result)).encoded())
        guard case .backtest(let back)? = decoded.result else { Issue.record("no result"); return }
        #expect(back.orders.map(\.reason) == OrderReason.allCases)
    }

    @Test func serverInfoRoundTripsWithAndWithoutCacheFigures() throws {
        var figures = CacheStatsInfo()
        figures.hits = 729
        figures.misses = 3
        figures.hitRate = 729.0 / 732
        figures.rejectedValues = 1
        figures.generationBytes = 1_300_000
        figures.generationKeys = 1000
        figures.localBytes = 42
        figures.localEntries = 7
        figures.lastPurgeUnixSeconds = 1_772_917_200
        figures.lastPurgeReason = "4:00 PM ET"
        figures.lastPurgeRemoved = 24
        figures.requests = 5
        figures.requestsWithoutRedis = 2
        for cache in [figures, nil] {
            let info = ServerInfo(serverVersion: "1", dataSource: "files", cacheConnected: true, engine: "v2", cacheGeneration: 9, cache: cache)
            let decoded = try CallResponse.decode(CallResponse(result: .serverInfo(info)).encoded())
            guard case .serverInfo(let back)? = decoded.result else {
                Issue.record("no server info")
                return
            }
            #expect(back == info)
        }
    }

    @Test func progressUpdateRoundTripsWithVariantErrors() throws {
        let update = ProgressUpdate(batchID: "b1", completed: 2, total: 5, state: .partial, results: [
            VariantResult(index: 3, outcome: .failure(.invalidArgument("bad weight", field: "variants[3].positions[0].weight"))),
        ], error: nil)
        let decoded = try ProgressUpdate.decode(update.encoded())
        #expect(decoded.batchID == "b1")
        #expect(decoded.completed == 2 && decoded.total == 5 && decoded.state == .partial)
        #expect(decoded.results.first?.index == 3)
        #expect(decoded.results.first?.outcome.failureValue?.field == "variants[3].positions[0].weight")
    }

    @Test func summaryResultsKeepTypedWarningsAndGridParameters() throws {
        var metrics = Metrics()
        metrics.sharpe = 0.5
        var stats = RunStatistics()
        stats.simulationMs = 1.5
        let warnings = [
            BacktestWarning(.startsLate, tickers: ["MSFT"], dates: [TradingDate(iso: "2013-03-05")!], message: "late"),
            BacktestWarning(.demoData, message: "demo"),
        ]
        let summary = BacktestSummary(
            strategyName: "s", metrics: metrics, benchmarkMetrics: Metrics(), finalEquity: 105, initialCapital: 100,
            orderCount: 4, warnings: warnings, stats: stats)
        let update = ProgressUpdate(batchID: "b2", completed: 1, total: 2, state: .partial, results: [
            VariantResult(index: 1, detail: .summary(summary), parameters: [GridParameter(path: "commission_bps", value: "2.5")]),
        ])
        let decoded = try ProgressUpdate.decode(update.encoded())
        let back = try #require(decoded.results.first)
        #expect(back.index == 1)
        #expect(back.parameters == [GridParameter(path: "commission_bps", value: "2.5")])
        #expect(back.summary?.warnings == warnings, "typed warnings (warning_details) survive a SUMMARY result")
        #expect(back.summary?.finalEquity == 105)
        #expect(back.summary?.orderCount == 4)
    }

    @Test func controlMessagesRoundTrip() throws {
        let settings = ConnectionSettings(maxFramePayload: 1, maxConcurrentStreams: 2, keepaliveIntervalMs: 3,
                                          idleTimeoutMs: 4, maxTimeoutMs: 5, serverVersion: "v")
        #expect(try ConnectionSettings.decode(settings.encoded()) == settings)
        #expect(try PingMessage.decode(PingMessage(opaque: .max).encoded()) == PingMessage(opaque: .max))
        let goAway = GoAwayMessage(lastStreamID: 41, status: CallStatus(code: .unavailable, message: "bye"))
        #expect(try GoAwayMessage.decode(goAway.encoded()) == goAway)
        #expect(try CancelMessage.decode(CancelMessage(reason: "r").encoded()) == CancelMessage(reason: "r"))
    }
}

extension Result {
    var failureValue: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
