import BacktestClient
import BacktestCore
import BacktestEngine
import BacktestModel
import BacktestProtocol
import BacktestRawClient
import BacktestServer
import BacktestService
import Foundation
import Testing

/// Issue 12: an answer whose orders alone cannot fit in a frame stops early with a short
/// RESOURCE_EXHAUSTED (the server's frame limit reaches the engine as `AnswerBound`), over a
/// real socket; answers that fit are untouched; in a batch, such a FULL variant fails alone.
@Suite("Answer bound", .timeLimit(.minutes(3)))
struct AnswerBoundTests {
    static let tenTickers = Array(BatchFixture.twentyTickers.prefix(10))

    /// `count` positions over the ten tickers in turn, SMA(20) > SMA(50) entries, equal weights,
    /// rebalanced monthly: every month re-targets each held position (one order each).
    static func heavy(_ count: Int) -> Strategy {
        let sma = { (length: Double) in Operand.series(SeriesRef(source: .indicator(IndicatorSpec(type: "sma", params: [length])))) }
        return Strategy(
            name: "heavy \(count)",
            positions: (0..<count).map { p in
                Position(ticker: tenTickers[p % tenTickers.count], weight: 1 / Double(count),
                         entry: .compare(lhs: sma(20), op: .greater, rhs: sma(50)))
            },
            rebalance: .monthly)
    }

    /// A served service whose engines stop at `limit` (as backtestd's `DomainSetup` wires it).
    static func service(limit: Int) throws -> BatchFixture {
        try BatchFixture(answerBound: AnswerBound(frameLimit: limit))
    }

    static func orderBytes(_ orders: [Order]) -> Int {
        orders.reduce(0) { $0 + AnswerBound.encodedSize(of: $1) }
    }

    /// One RunBacktest over a raw connection: the RESPONSE and its payload's size.
    static func run(_ strategy: Strategy, port: Int) async throws -> (CallResponse, Int) {
        let (connection, _) = try await RawConnection.handshake(port: port)
        try await connection.sendRequest(1, CallRequest(
            header: RequestHeader(requestID: "bound"),
            method: .runBacktest(BacktestRequest(strategy: strategy, settings: BatchFixture.sixYears))))
        guard let frame = await connection.nextFrame(where: { $0.type == .response }) else {
            throw TestFailure("no RESPONSE: the connection closed")
        }
        await connection.close()
        return (try CallResponse.decode(frame.payload), frame.payload.readableBytes)
    }

    @Test func orderSizesEqualTheEncodersBytes() async throws {
        // A name long enough that the result's and the response's length prefixes take two bytes
        // with or without one order: the difference is the order's bytes exactly.
        let base = BacktestResult(
            strategyName: String(repeating: "n", count: 300), dates: [], equity: [], benchmark: [], orders: [],
            metrics: Metrics(), benchmarkMetrics: Metrics(), warnings: [], stats: RunStatistics(), initialCapital: 100_000,
            benchmarkTicker: "SPY", dataSource: "test")
        func bytes(_ orders: [Order]) -> Int {
            var result = base
            result.orders = orders
            return CallResponse(result: .backtest(result)).encoded().readableBytes
        }
        let empty = bytes([])
        let day = TradingDate(iso: "2015-06-01")!
        var orders: [Order] = [
            Order(date: day, ticker: "AAPL", side: .buy, quantity: 10, price: 101.5, commission: 0),
            Order(date: day, ticker: "BRK.B", side: .sell, quantity: 0.25, price: 0, commission: -0.0, reason: .signal),
            Order(date: day, ticker: "Ä", side: .sell, quantity: .nan, price: 1e300, commission: 0.01, reason: .time),
            Order(date: day, ticker: "", side: .buy, quantity: 0, price: 0, commission: 0, reason: .rebalance),
            Order(date: day, ticker: String(repeating: "X", count: 200), side: .buy, quantity: 1, price: 2, commission: 3, reason: .trailingStop),
        ]
        // And real ones: a simulation's orders (entries, exits, rebalances).
        let real = try await Self.service(limit: Wire.defaultMaxFramePayload).service.pipeline
            .runBacktest(Self.heavy(20), settings: BatchFixture.sixYears)
        orders += real.orders.prefix(300)
        for order in orders {
            #expect(bytes([order]) - empty == AnswerBound.encodedSize(of: order), "\(order)")
        }
    }

    @Test func anAnswerJustUnderTheLimitSucceedsAndOrdersOverItStopEarly() async throws {
        let strategy = Self.heavy(20)
        // The answer's real size, from a server whose frame is large.
        let big = Wire.defaultMaxFramePayload
        let (fitting, answerBytes) = try await withServer({ $0.maxFramePayload = big }, service: try Self.service(limit: big).served) { _, port in
            try await Self.run(strategy, port: port)
        }
        guard case .backtest(let result)? = fitting.result else { throw TestFailure("no result: \(fitting.status)") }
        let ordersBytes = Self.orderBytes(result.orders)
        #expect(ordersBytes > ServerConfiguration.minimumMaxFramePayload)
        #expect(answerBytes > ordersBytes + 1024, "curves too: room between the two refusals")
        print("answer bound: \(result.orders.count) orders, \(ordersBytes) bytes of orders in a \(answerBytes)-byte answer")

        // Just under the limit (a few bytes of timings may differ between runs): answered.
        let under = answerBytes + 16
        let (answered, _) = try await withServer({ $0.maxFramePayload = under }, service: try Self.service(limit: under).served) { _, port in
            try await Self.run(strategy, port: port)
        }
        #expect(answered.status.code == .ok)
        guard case .backtest(let again)? = answered.result else { throw TestFailure("no result: \(answered.status)") }
        #expect(again.orders == result.orders && again.equity == result.equity)

        // Orders fit, the whole does not: refused after encoding, as before.
        let middle = ordersBytes + (answerBytes - ordersBytes) / 2
        let (late, _) = try await withServer({ $0.maxFramePayload = middle }, service: try Self.service(limit: middle).served) { _, port in
            try await Self.run(strategy, port: port)
        }
        #expect(late.status.code == .resourceExhausted)
        #expect(late.status.message.hasPrefix("the answer is"), "\(late.status.message)")

        // One byte fewer than the orders: stopped in the engine, naming the limit.
        let over = ordersBytes - 1
        let (early, _) = try await withServer({ $0.maxFramePayload = over }, service: try Self.service(limit: over).served) { _, port in
            try await Self.run(strategy, port: port)
        }
        #expect(early.status.code == .resourceExhausted)
        #expect(early.status.message.hasPrefix("the result's orders alone exceed the frame limit of \(over) bytes"), "\(early.status.message)")
        #expect(early.header.requestID == "bound")
    }

    /// The issue's 20,000 positions over 10 years, monthly, scaled down (4,000 positions, a
    /// 512 KiB frame): the full answer would be about 40 times the frame.
    @Test func aHeavyPortfolioOverTheFrameStopsEarlyWithSmallHeapGrowth() async throws {
        let limit = 512 << 10
        let strategy = Self.heavy(4_000)
        let fixture = try Self.service(limit: limit)
        try await withServer({ $0.maxFramePayload = limit }, service: fixture.served) { _, port in
            let client = BacktestClient(port: port)
            let trimsBefore = MemoryReturn.trims
            let before = MemoryStatus.read()
            var refusal: BacktestError?
            do {
                _ = try await client.runBacktest(strategy, settings: BatchFixture.tenYears)
            } catch let error as BacktestError {
                refusal = error
            }
            let after = MemoryStatus.read()
            let error = try #require(refusal, "a 4,000-position monthly portfolio over 10 years cannot fit in 512 KiB")
            #expect(error.code == .resourceExhausted)
            #expect(error.message.hasPrefix("the result's orders alone exceed the frame limit of \(limit) bytes ("), "\(error.message)")
            let soFar = try #require(Int(error.message.split(separator: "(")[1].split(separator: " ")[0]))
            // Orders of these tickers take at least 30 bytes; one fill point adds at most two per
            // position. The full result has about 4,000 x 120 rebalancing orders.
            #expect(soFar <= limit / 30 + 2 * strategy.positions.count, "stopped at the first check past the limit")
            // The refusal gives its memory back soon (`MemoryReturn`).
            try await poll { MemoryReturn.trims > trimsBefore }
            let peakGrowthMB = Double((after?.peakKB ?? 0) - (before?.peakKB ?? 0)) / 1024
            let keptMB = Double((MemoryStatus.read()?.residentKB ?? 0) - (before?.residentKB ?? 0)) / 1024
            print("""
                answer bound: 4,000 positions x 10 years monthly stopped after \(soFar) orders; \
                peak RSS +\(String(format: "%.1f", peakGrowthMB)) MiB, RSS after the trim +\(String(format: "%.1f", keptMB)) MiB
                """)
            // Other suites share the process (see BatchMemoryTests); the sharp check is the
            // order count above. This one catches building the whole answer again.
            #expect(peakGrowthMB < 512)
            await client.close()
        }
    }

    @Test func aBatchFullVariantOverTheFrameFailsAloneAndGetVariantResultsSaysSo() async throws {
        let limit = 256 << 10
        let fixture = try Self.service(limit: limit)
        var variants = BatchFixture.smaVariants(2)
        variants.append(Self.heavy(200))
        try await withServer({ $0.maxFramePayload = limit }, service: fixture.served) { _, port in
            let client = BacktestClient(port: port)
            let outcome = try await BatchOutcome.collect(client.runBatch(variants, settings: BatchFixture.sixYears, detail: .full))
            let final = try #require(outcome.final, "the batch ends Final: one variant's size does not fail it")
            #expect(final.completed == 3)
            var outcomes: [Int: Result<BacktestResult, BacktestError>] = [:]
            for update in outcome.updates { for result in update.results { outcomes[result.index] = result.outcome } }
            for index in 0..<2 {
                guard case .success(let result)? = outcomes[index] else { Issue.record("variant \(index): \(String(describing: outcomes[index]))"); continue }
                #expect(!result.orders.isEmpty)
            }
            guard case .failure(let error)? = outcomes[2] else { throw TestFailure("variant 2: \(String(describing: outcomes[2]))") }
            #expect(error.code == .resourceExhausted)
            #expect(error.message.hasPrefix("the result's orders alone exceed the frame limit of \(limit) bytes"), "\(error.message)")

            // Recomputed on request: the same per-variant error beside the others' results.
            let again = try await client.variantResults(batchID: final.batchID, selection: .indices([2, 0]))
            #expect(again.map(\.index) == [2, 0])
            if case .failure(let error) = again.first?.outcome {
                #expect(error.code == .resourceExhausted)
            } else {
                Issue.record("variant 2 recomputed: \(String(describing: again.first?.outcome))")
            }
            if case .success = again.last?.outcome {} else { Issue.record("variant 0 recomputed: \(String(describing: again.last?.outcome))") }
            await client.close()
        }
    }
}
