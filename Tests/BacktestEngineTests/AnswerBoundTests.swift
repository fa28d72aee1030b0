import BacktestCore
import BacktestModel
import Testing

@testable import BacktestEngine

/// Issue 12: a result whose orders alone cannot fit in a frame stops early with
/// RESOURCE_EXHAUSTED, in both engines; one that fits is untouched. (The sizes are checked
/// against the real protobuf-c encoder in BacktestServerTests' `AnswerBoundTests`.)
@Suite("Answer bound in the engines", .offCooperativePool)
struct AnswerBoundEngineTests {
    typealias Scale = CancellationAndScaleTests

    /// The encoded size of `result`'s orders, as `AnswerBound` counts them.
    static func orderBytes(_ result: BacktestResult) -> Int {
        result.orders.reduce(0) { $0 + AnswerBound.encodedSize(of: $1) }
    }

    /// The "(N orders so far)" of a bound's error.
    static func ordersSoFar(_ error: BacktestError) -> Int? {
        guard let open = error.message.firstIndex(of: "("), let space = error.message[open...].firstIndex(of: " ") else { return nil }
        return Int(error.message[error.message.index(after: open)..<space])
    }

    @Test func bothEnginesRefuseOneByteOverTheOrdersAndAnswerAtTheirExactSize() throws {
        let strategy = Scale.portfolio(20)
        let (market, store) = try Scale.prepared(strategy, history: false)
        for engine in [VectorEngine() as any BacktestRunner, ReferenceEngine()] {
            let free = try engine.run(validated: strategy, market: market, indicators: store, cancellation: nil)
            let bytes = Self.orderBytes(free)
            #expect(free.orders.count > 100, "\(engine.name): enough orders to matter")
            let exact = try engine.run(
                validated: strategy, market: market, indicators: store, cancellation: nil, bound: AnswerBound(frameLimit: bytes))
            #expect(exact.orders == free.orders && exact.equity == free.equity, "\(engine.name): a bound at the size changes nothing")
            do {
                _ = try engine.run(
                    validated: strategy, market: market, indicators: store, cancellation: nil, bound: AnswerBound(frameLimit: bytes - 1))
                Issue.record("\(engine.name): one byte under the orders' size must be refused")
            } catch {
                #expect(error.code == .resourceExhausted, "\(engine.name)")
                #expect(error.message.hasPrefix("the result's orders alone exceed the frame limit of \(bytes - 1) bytes ("), "\(error.message)")
                #expect(error.message.count < 200)
            }
        }
    }

    @Test func theV2LoopStopsSoonAfterTheOrdersOutgrowTheBound() throws {
        let strategy = Scale.portfolio(2_000)
        let (market, store) = try Scale.prepared(strategy)
        let full = try VectorEngine().run(validated: strategy, market: market, indicators: store, cancellation: nil)
        let limit = 64 << 10
        #expect(Self.orderBytes(full) > 8 * limit, "the full result is far over the bound")
        do {
            _ = try EngineSelection().run(
                validated: strategy, market: market, indicators: store, bound: AnswerBound(frameLimit: limit))
            Issue.record("the bound must stop the loop")
        } catch {
            #expect(error.code == .resourceExhausted)
            let soFar = try #require(Self.ordersSoFar(error), "\(error.message)")
            // Stopped at the first fill point past the bound: at most one fill point's orders
            // (two per position: a rebalance or exit and an entry) beyond it.
            let smallest = full.orders.map(AnswerBound.encodedSize(of:)).min() ?? 1
            #expect(soFar <= limit / smallest + 1 + 2 * strategy.positions.count)
            #expect(soFar < full.orders.count / 4, "\(soFar) of \(full.orders.count) orders built")
        }
    }

    @Test func sizesFollowProtobufsRulesForDefaultsAndVarints() {
        let date = TradingDate(iso: "2020-01-02")!
        // tag+len (2) + date (1 + 4) + ticker (1 + 1 + 4) + side (2) + 3 doubles (27) + reason (2)
        let full = Order(date: date, ticker: "AAPL", side: .sell, quantity: 1, price: 2, commission: 3, reason: .signal)
        #expect(AnswerBound.encodedSize(of: full) == 2 + 5 + 6 + 2 + 27 + 2)
        // Zero commission, -0.0 price and the ENTRY reason are omitted.
        let sparse = Order(date: date, ticker: "AAPL", side: .buy, quantity: 1, price: -0.0, commission: 0, reason: .entry)
        #expect(AnswerBound.encodedSize(of: sparse) == 2 + 5 + 6 + 2 + 9)
        #expect(AnswerBound.varintSize(0) == 1 && AnswerBound.varintSize(127) == 1 && AnswerBound.varintSize(128) == 2)
        #expect(AnswerBound.varintSize(UInt64.max) == 10)
    }
}
