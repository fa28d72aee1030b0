import BacktestBench
import BacktestCore
import BacktestModel
import Testing

@Suite("Result checking")
struct ResultCheckTests {
    static func result(equity: [Double], name: String = "s", benchmark: [Double]? = nil) -> BacktestResult {
        let start = TradingDate(year: 2020, month: 1, day: 2)!
        let dates = (0..<equity.count).map { TradingDate(daysSinceEpoch: start.daysSinceEpoch + Int32($0)) }
        return BacktestResult(strategyName: name, dates: dates, equity: equity, benchmark: benchmark ?? equity, orders: [],
                              metrics: Metrics(), benchmarkMetrics: Metrics(), warnings: [], stats: RunStatistics(),
                              initialCapital: 100_000, benchmarkTicker: "SPY", dataSource: "alpaca")
    }

    @Test func identicalResultsMatch() {
        let a = ExpectedOutcome.single(ResultFingerprint(Self.result(equity: [100_000, 100_500, 101_000])))
        let b = ExpectedOutcome.single(ResultFingerprint(Self.result(equity: [100_000, 100_500, 101_000])))
        #expect(a.mismatch(in: b) == nil)
    }

    /// One day's equity off by one ulp, final equity unchanged: still a mismatch.
    @Test func aChangeInTheLastBitOfOneDayIsDetected() {
        let expected = ExpectedOutcome.single(ResultFingerprint(Self.result(equity: [100_000, 100_500, 101_000])))
        let actual = ExpectedOutcome.single(ResultFingerprint(Self.result(equity: [100_000, 100_500.0.nextUp, 101_000])))
        #expect(expected.mismatch(in: actual) != nil)
    }

    @Test func benchmarkCurveIsPartOfTheFingerprint() {
        let expected = ResultFingerprint(Self.result(equity: [1, 2, 3], benchmark: [1, 1, 1]))
        let actual = ResultFingerprint(Self.result(equity: [1, 2, 3], benchmark: [1, 1, 1.5]))
        #expect(expected != actual)
    }

    @Test func anotherUsersResultIsDetected() {
        let mine = ExpectedOutcome.single(ResultFingerprint(Self.result(equity: [100_000, 101_000], name: "mine")))
        let theirs = ExpectedOutcome.single(ResultFingerprint(Self.result(equity: [100_000, 101_000], name: "theirs")))
        #expect(mine.mismatch(in: theirs) != nil)
    }

    @Test func batchesCompareEveryVariantInOrder() throws {
        let a = Self.result(equity: [1, 2], name: "a")
        let b = Self.result(equity: [1, 3], name: "b")
        let expected = try ExpectedOutcome.batch([VariantResult(index: 1, outcome: .success(b)), VariantResult(index: 0, outcome: .success(a))], total: 2)
        #expect(expected == .batch([ResultFingerprint(a), ResultFingerprint(b)]))
        let swapped = ExpectedOutcome.batch([ResultFingerprint(b), ResultFingerprint(a)])
        #expect(expected.mismatch(in: swapped)?.contains("variant 0") == true)
        #expect(expected.mismatch(in: .batch([ResultFingerprint(a)])) != nil, "a lost variant is a mismatch")
        #expect(expected.mismatch(in: .single(ResultFingerprint(a))) != nil)
    }

    @Test func incompleteOrFailedBatchesThrow() {
        let a = Self.result(equity: [1, 2])
        #expect(throws: BacktestError.self) { try ExpectedOutcome.batch([VariantResult(index: 0, outcome: .success(a))], total: 2) }
        #expect(throws: BacktestError.self) {
            try ExpectedOutcome.batch([VariantResult(index: 0, outcome: .failure(BacktestError(.internal, "x")))], total: 1)
        }
        #expect(throws: BacktestError.self) { try ExpectedOutcome.batch([VariantResult(index: 5, outcome: .success(a))], total: 1) }
    }

    @Test func workloadShapes() {
        let variants = Workload.variants(50, tickers: 10)
        #expect(variants.count == 50)
        #expect(Set(variants.map(\.name)).count == 50, "50 distinct parameter pairs")
        #expect(Workload.variants(80, tickers: 1).count == 50, "capped at the 50 pairs there are")
        #expect(Set(Workload.variants(8, tickers: 5).map(\.name)).count == 8)
        let strategy = Workload.strategy(tickers: 5)
        #expect(strategy.positions.map(\.ticker) == Array(Workload.tickers.prefix(5)))
        #expect(abs(strategy.positions.map(\.weight).reduce(0, +) - 1) < 1e-12)
        let settings = Workload.settings(years: 3)
        #expect(settings.start.iso == "2017-08-28" && settings.end.iso == "2020-08-28")
        #expect(settings.initialCapital == 100_000 && settings.benchmark == "SPY")
    }

    @Test func returnVarianceOfFlatAndMovingCurves() {
        #expect(dailyReturnVariance([100, 100, 100, 100]) == 0)
        // Returns +10 % and -10 %: mean 0, variance 0.01.
        #expect(abs(dailyReturnVariance([100, 110, 99]) - 0.01) < 1e-12)
    }
}
