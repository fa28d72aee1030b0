import BacktestCore
import BacktestModel
import BacktestTestSupport
import Foundation
import Testing

@testable import BacktestEngine

/// The cases of shared/reference/backtests.json (vectorbt 1.2 + empyrical 0.7).
enum ReferenceBacktest {
    /// An order of a reference case; `reason` only in the stops fixture (`StopsReferenceCase`).
    struct ExpectedOrder: Decodable {
        var date: String
        var ticker: String
        var side: String
        var quantity: Double
        var price: Double
        var commission: Double
        var reason: String?
    }

    struct Expected: Decodable {
        var dates: [String]
        var equity: [Double]
        var benchmark: [Double]
        var final_equity: Double
        var orders: [ExpectedOrder]
        var metrics: [String: Double]
    }

    static func all() throws -> [ReferenceCase<Expected>] {
        try ReferenceCase.load(SharedData.referenceDirectory.appendingPathComponent("backtests.json"))
    }
}

@Suite("The reference backtests of shared/reference/backtests.json", .offCooperativePool)
struct ReferenceBacktestTests {
    static let tolerance = 1e-6

    @Test("the reference file decodes as strategy files")
    func decodes() throws {
        let cases = try ReferenceBacktest.all()
        #expect(cases.count >= 2)
        let first = try #require(cases.first { $0.id == "sma50_200_AAPL_close" })
        #expect(first.file.strategy.fill == .close)
        #expect(first.file.initialCapital == 100_000)
        #expect(first.file.strategy.positions[0].entry == .compare(
            lhs: .series(SeriesRef(source: .indicator(IndicatorSpec(type: "sma", params: [50], output: "value")))),
            op: .greater,
            rhs: .series(SeriesRef(source: .indicator(IndicatorSpec(type: "sma", params: [200], output: "value"))))))
    }

    @Test("v2 engine reproduces equity, benchmark, orders and metrics", arguments: ["sma50_200_AAPL_close", "rsi14_XOM_next_open"])
    func reproduce(id: String) throws {
        let reference = try #require(try ReferenceBacktest.all().first { $0.id == id })
        let settings = reference.settings
        let snapshot = try reference.snapshot()
        let analysis = try StrategyAnalysis(strategy: reference.file.strategy, settings: settings)
        let store = try IndicatorStore.compute(analysis.indicatorKeys, snapshot: snapshot)
        let result = try VectorEngine().run(reference.file.strategy, settings: settings, snapshot: snapshot, indicators: store)
        try Self.check(result, against: reference.expected)
        #expect(result.stats.engine == "v2")
        #expect(result.stats.barsProcessed == reference.expected.dates.count)
    }

    static func check(_ result: BacktestResult, against expected: ReferenceBacktest.Expected) throws {
        try #require(result.dates.map(\.iso) == expected.dates)
        func near(_ a: Double, _ b: Double) -> Bool { TestData.close(a, b, tolerance: tolerance) }
        let equityMismatch = zip(result.equity, expected.equity).enumerated().first { !near($0.element.0, $0.element.1) }
        #expect(equityMismatch == nil, "equity differs at \(String(describing: equityMismatch.map { expected.dates[$0.offset] })): \(String(describing: equityMismatch?.element))")
        #expect(zip(result.benchmark, expected.benchmark).allSatisfy { near($0, $1) })
        #expect(near(result.finalEquity, expected.final_equity))
        try #require(result.orders.count == expected.orders.count)
        for (order, reference) in zip(result.orders, expected.orders) {
            #expect(order.date.iso == reference.date)
            #expect(order.ticker == reference.ticker)
            #expect(order.side.rawValue == reference.side)
            #expect(near(order.quantity, reference.quantity), "quantity on \(reference.date)")
            #expect(near(order.price, reference.price), "price on \(reference.date)")
            #expect(near(order.commission, reference.commission))
        }
        let actual = result.metrics.byReferenceName
        for (name, value) in expected.metrics {
            let mine = try #require(actual[name], "metric \(name) not computed")
            #expect(near(mine, value), "\(name): \(mine) vs \(value)")
        }
    }
}
