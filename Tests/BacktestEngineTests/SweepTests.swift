import BacktestCore
import BacktestModel
import Foundation
import Testing

@testable import BacktestEngine

/// SweepRunner's summaries against the full results of the same variants: equal to the bit.
@Suite("Sweep summaries against full results", .offCooperativePool)
struct SweepTests {
    /// Every number of a metrics value as its bit pattern (so -0 differs from 0, NaN equals
    /// itself), with the counts.
    static func bits(_ m: Metrics) -> [UInt64] {
        [
            m.totalReturn, m.cagr, m.volatility, m.sharpe, m.sortino, m.maxDrawdown, m.calmar, m.alpha, m.beta,
            m.winRate, m.profitFactor, m.exposure,
        ].map(\.bitPattern) + [UInt64(bitPattern: Int64(m.maxDrawdownDuration)), UInt64(bitPattern: Int64(m.tradeCount))]
    }

    /// Runs `variants` through SweepRunner (on `parallelism` threads) and each through
    /// VectorEngine, and expects the same summary, to the bit, or the same error.
    static func expectSummariesEqualFull(
        _ variants: [Strategy], market: PreparedMarket, indicators: IndicatorStore, parallelism: Int = 2
    ) -> (succeeded: Int, failed: Int) {
        let summaries = SweepRunner.summaries(variants, market: market, indicators: indicators, parallelism: parallelism)
        var succeeded = 0
        var failed = 0
        #expect(summaries.count == variants.count)
        for (index, (variant, summary)) in zip(variants, summaries).enumerated() {
            let full = Result { () throws(BacktestError) -> BacktestResult in
                try VectorEngine().run(variant, market: market, indicators: indicators)
            }
            switch (summary, full) {
            case (.success(let summary), .success(let full)):
                succeeded += 1
                let name = "variant \(index) (\(variant.name))"
                #expect(bits(summary.metrics) == bits(full.metrics), "\(name): metrics \(summary.metrics) vs \(full.metrics)")
                #expect(bits(summary.benchmarkMetrics) == bits(full.benchmarkMetrics), "\(name): benchmark metrics")
                #expect(summary.finalEquity.bitPattern == full.finalEquity.bitPattern, "\(name): final equity")
                #expect(summary.orderCount == full.orders.count, "\(name): order count")
                #expect(summary.tradeCount == full.metrics.tradeCount, "\(name): trade count")
                #expect(summary.warnings == full.warnings, "\(name): warnings")
                #expect(summary.strategyName == full.strategyName)
                #expect(summary.initialCapital == full.initialCapital)
                #expect(summary.stats.engine == full.stats.engine && summary.stats.barsProcessed == full.stats.barsProcessed)
                #expect(summary.stats.dataSource == full.stats.dataSource)
            case (.failure(let summaryError), .failure(let fullError)):
                failed += 1
                #expect(summaryError == fullError, "variant \(index)")
            default:
                Issue.record("variant \(index) (\(variant.name)): summary \(summary) but full \(full)")
            }
        }
        return (succeeded, failed)
    }

    /// The issue's grid: sma(F) > sma(S), F = 5...104, S = 110...209, AAPL 2010-2019, next-open
    /// fills, 1 bp commission (10,000 variants).
    @Test("the 10,000-variant SMA grid: every summary equals its full result to the bit")
    func smaGrid() throws {
        let settings = BacktestSettings(start: TestData.date("2010-01-04"), end: TestData.date("2019-12-31"))
        let snapshot = try TestData.snapshot(["AAPL", "SPY"])
        let variants = (5...104).flatMap { fast in
            (110...209).map { slow in
                Strategy(
                    name: "sma \(fast)/\(slow)",
                    positions: [Position(ticker: "AAPL", weight: 1, entry: compare(series("sma:\(fast)"), .greater, series("sma:\(slow)")))],
                    fill: .nextOpen, commissionBps: 1)
            }
        }
        let analysis = try StrategyAnalysis(strategies: variants, settings: settings)
        let store = try IndicatorStore.compute(analysis.indicatorKeys, snapshot: snapshot)
        let market = try PreparedMarket(settings: settings, snapshot: snapshot)
        let (succeeded, failed) = Self.expectSummariesEqualFull(variants, market: market, indicators: store)
        #expect(succeeded == 10_000 && failed == 0)

        // The plan shares the 200 operand series; each comparison is used once.
        let plan = SweepPlan(variants, market: market, indicators: store, parallelism: 1)
        #expect(plan.operands.count == 200)
        #expect(plan.comparisons.count == 10_000)
        #expect(plan.shared.allSatisfy { $0 == nil })
    }

    /// The differential test's strategies (several positions, explicit exits, crossings, costs,
    /// every rebalancing, leverage, a ticker with missing bars, one listed after the start), each
    /// also with the other fill timing and other costs, in one sweep so that conditions repeat
    /// across variants and are shared.
    @Test("varied strategies: every summary equals its full result to the bit")
    func variedStrategies() throws {
        let settings = DifferentialTests.settings
        let snapshot = try DifferentialTests.loadedSnapshot.get()
        var variants: [Strategy] = []
        for base in DifferentialTests.strategies {
            for fill in FillTiming.allCases {
                for (commission, slippage) in [(0.0, 0.0), (base.commissionBps, base.slippageBps), (25, 10)] {
                    var variant = base
                    variant.name = "\(base.name) / \(fill.rawValue) / \(commission)+\(slippage) bp"
                    variant.fill = fill
                    variant.commissionBps = commission
                    variant.slippageBps = slippage
                    variants.append(variant)
                }
            }
        }
        // Every rebalancing for the two-legged ones.
        for base in DifferentialTests.strategies where base.positions.count > 1 {
            for rebalance in Rebalance.allCases {
                var variant = base
                variant.name = "\(base.name) / rebalance \(rebalance.rawValue)"
                variant.rebalance = rebalance
                variants.append(variant)
            }
        }
        let analysis = try StrategyAnalysis(strategies: variants, settings: settings)
        let store = try IndicatorStore.compute(analysis.indicatorKeys, snapshot: snapshot)
        let market = try PreparedMarket(settings: settings, snapshot: snapshot)
        let (succeeded, failed) = Self.expectSummariesEqualFull(variants, market: market, indicators: store)
        #expect(succeeded == variants.count && failed == 0)
        let plan = SweepPlan(variants, market: market, indicators: store, parallelism: 2)
        #expect(plan.shared.contains { $0 != nil }, "repeated conditions are evaluated once and shared")
        // Every variant compiles, but those with ATR stops, which take the full path by design.
        #expect(zip(plan.variants, variants).allSatisfy { compiled, variant in
            (compiled == nil) == variant.positions.contains { $0.exits.atrPeriod != nil }
        })
        // Summaries do not depend on the number of threads.
        let one = SweepRunner.summaries(variants, market: market, indicators: store, parallelism: 1)
        let three = SweepRunner.summaries(variants, market: market, indicators: store, parallelism: 3)
        for (a, b) in zip(one, three) {
            let (x, y) = (try a.get(), try b.get())
            #expect(Self.bits(x.metrics) == Self.bits(y.metrics) && x.finalEquity == y.finalEquity)
        }
    }

    @Test("a variant that cannot run gets the error of its full run; the others run")
    func errors() throws {
        let settings = DifferentialTests.settings
        let snapshot = try DifferentialTests.loadedSnapshot.get()
        let good = DifferentialTests.strategies[1]
        var unknownTicker = good
        unknownTicker.positions[0].ticker = "NOPE"
        var badWeight = good
        badWeight.positions[0].weight = 1.5
        var unknownIndicator = good
        unknownIndicator.positions[0].entry = compare(
            .series(SeriesRef(source: .indicator(IndicatorSpec(type: "nope", params: [3])))), .greater, .number(1))
        var unknownConditionTicker = good
        unknownConditionTicker.positions[0].exit = compare(series("close", "ZZZ"), .greater, .number(1))
        var noPositions = good
        noPositions.positions = []
        let variants = [good, unknownTicker, badWeight, good, unknownIndicator, unknownConditionTicker, noPositions]
        let analysis = try StrategyAnalysis(strategies: [good], settings: settings)
        let store = try IndicatorStore.compute(analysis.indicatorKeys, snapshot: snapshot)
        let market = try PreparedMarket(settings: settings, snapshot: snapshot)
        let (succeeded, failed) = Self.expectSummariesEqualFull(variants, market: market, indicators: store)
        #expect(succeeded == 2 && failed == 5)
        #expect(SweepRunner.summaries([], market: market, indicators: store, parallelism: 2).isEmpty)
    }

    @Test("a summary made from a full result keeps its numbers")
    func summaryOfFullResult() throws {
        let settings = DifferentialTests.settings
        let snapshot = try DifferentialTests.loadedSnapshot.get()
        let strategy = DifferentialTests.strategies[3]
        let analysis = try StrategyAnalysis(strategy: strategy, settings: settings)
        let store = try IndicatorStore.compute(analysis.indicatorKeys, snapshot: snapshot)
        let full = try VectorEngine().run(strategy, settings: settings, snapshot: snapshot, indicators: store)
        let summary = BacktestSummary(full)
        #expect(summary.metrics == full.metrics && summary.finalEquity == full.finalEquity)
        #expect(summary.orderCount == full.orders.count && summary.warnings == full.warnings)
    }
}

@Suite("Signal bit vectors")
struct SignalBitsTests {
    @Test("packing, word operations and the first set bit agree with Bool arrays", arguments: [1, 63, 64, 65, 130, 2516])
    func agreesWithBools(count: Int) {
        var generator = SystemRandomNumberGenerator()
        let a = (0..<count).map { _ in Bool.random(using: &generator) }
        let b = (0..<count).map { _ in Bool.random(using: &generator) }
        let x = SignalBits(a)
        let y = SignalBits(b)
        #expect(x.bools == a)
        #expect((x & y).bools == zip(a, b).map { $0 && $1 })
        #expect((x | y).bools == zip(a, b).map { $0 || $1 })
        #expect((~x).bools == a.map { !$0 })
        if count & 63 != 0 {
            #expect((~x).words.last! >> UInt64(count & 63) == 0, "no bit past the calendar")
        }
        #expect(SignalBits.andNot(x, y).bools == zip(a, b).map { $0 && !$1 })
        #expect(SignalBits(count: count, value: true).bools == Array(repeating: true, count: count))
        for start in [0, 1, count / 2, count - 1, count] {
            #expect(x.firstSet(from: start) == a.indices.first { $0 >= start && a[$0] })
        }
    }

    @Test("comparisons are false on NaN; crossings look at the day before")
    func compare() {
        let l: [Double] = [1, 2, .nan, 4, 1, 3]
        let r: [Double] = [2, 1, 1, .nan, 2, 2]
        func run(_ op: Comparison) -> [Bool] {
            l.withUnsafeBufferPointer { l in r.withUnsafeBufferPointer { r in SignalBits.compare(l, op, r, count: 6).bools } }
        }
        #expect(run(.greater) == [false, true, false, false, false, true])
        #expect(run(.lessOrEqual) == [true, false, false, false, true, false])
        #expect(run(.crossesAbove) == [false, true, false, false, false, true])
        #expect(run(.crossesBelow) == [false, false, false, false, false, false])
    }
}
