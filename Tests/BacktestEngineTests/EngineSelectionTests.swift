import BacktestCore
import BacktestModel
import Foundation
import Testing

@testable import BacktestEngine

/// Collects log lines from the selection's `log` closure.
private final class LogLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ line: String) { lock.withLock { lines.append(line) } }
    var all: [String] { lock.withLock { lines } }
}

@Suite("USE_NEW_ENGINE and the fallback to the reference engine")
struct EngineSelectionTests {
    static let settings = BacktestSettings(start: TestData.date("2014-01-02"), end: TestData.date("2014-06-30"))
    static let strategy = Strategy(positions: [
        Position(ticker: "AAPL", weight: 1, entry: compare(series("close"), .greater, series("sma:20"))),
    ])
    static let smaKey = try! IndicatorKey(ticker: "AAPL", spec: IndicatorSpec(type: "sma", params: [20]))

    // USE_NEW_ENGINE itself is parsed by backtestd's configuration reader (BacktestDaemonTests).

    @Test("each setting runs its engine")
    func selects() throws {
        let snapshot = try TestData.snapshot(["AAPL", "SPY"])
        let store = try IndicatorStore.compute([Self.smaKey], snapshot: snapshot)
        let v2 = try EngineSelection(useNewEngine: true).run(Self.strategy, settings: Self.settings, snapshot: snapshot, indicators: store)
        let reference = try EngineSelection(useNewEngine: false).run(Self.strategy, settings: Self.settings, snapshot: snapshot, indicators: store)
        #expect(v2.stats.engine == "v2")
        #expect(reference.stats.engine == "reference")
        #expect(v2.orders.count == reference.orders.count && v2.orders.count > 0)
    }

    @Test("an internal failure of v2 falls back to the reference engine, logged and warned")
    func fallback() throws {
        let snapshot = try TestData.snapshot(["AAPL", "SPY"])
        var corrupt = IndicatorStore()
        corrupt.insert([1, 2, 3], for: Self.smaKey)  // not aligned with AAPL's bars: v2 refuses it
        #expect(throws: BacktestError.self) {
            try VectorEngine().run(Self.strategy, settings: Self.settings, snapshot: snapshot, indicators: corrupt)
        }
        let log = LogLines()
        let result = try EngineSelection().run(
            Self.strategy, settings: Self.settings, snapshot: snapshot, indicators: corrupt, log: log.append)
        #expect(result.stats.engine == "reference")
        #expect(result.warnings.last?.message.contains("the v2 engine failed") == true)
        #expect(result.warnings.last?.kind == .engineFallback)
        #expect(log.all.contains { $0.contains("v2 engine failed") && $0.contains("INTERNAL") })
        let good = try IndicatorStore.compute([Self.smaKey], snapshot: snapshot)
        let expected = try VectorEngine().run(Self.strategy, settings: Self.settings, snapshot: snapshot, indicators: good)
        #expect(result.equity == expected.equity || zip(result.equity, expected.equity).allSatisfy { TestData.close($0, $1, tolerance: 1e-9) })
    }

    @Test("request errors are answers, not failures: no fallback")
    func noFallbackOnInvalidArgument() throws {
        let snapshot = try TestData.snapshot(["AAPL", "SPY"])
        var bad = Self.strategy
        bad.positions[0].weight = -1
        let log = LogLines()
        #expect(throws: BacktestError.invalidArgument("weight must be in (0, 1], got -1.0", field: "strategy.positions[0].weight")) {
            try EngineSelection().run(bad, settings: Self.settings, snapshot: snapshot, indicators: IndicatorStore(), log: log.append)
        }
        #expect(log.all.isEmpty)
    }
}

@Suite("The timed pipeline")
struct BacktesterTests {
    @Test("fills the store, reports phases and counts, and reuses cached series")
    func phases() throws {
        let snapshot = try TestData.snapshot(["AAPL", "SPY"])
        let strategy = Strategy(positions: [Position(ticker: "AAPL", weight: 1, entry: .all([
            compare(series("sma:50"), .greater, series("sma:200")),
            compare(series("close", "SPY"), .greater, series("sma:200", "SPY")),
        ]))])
        let settings = BacktestSettings(start: TestData.date("2010-01-04"), end: TestData.date("2012-12-31"))
        var store = IndicatorStore()
        let first = try Backtester().run(strategy, settings: settings, snapshot: snapshot, indicators: &store, dataMs: 12)
        #expect(first.stats.indicatorSeries == 3 && first.stats.indicatorSeriesComputed == 3)
        #expect(store.count == 3)
        #expect(first.stats.dataMs == 12 && first.stats.totalMs >= 12)
        #expect(first.stats.simulationMs > 0 && first.stats.engine == "v2" && first.stats.dataSource == "files")
        let second = try Backtester().run(strategy, settings: settings, snapshot: snapshot, indicators: &store)
        #expect(second.stats.indicatorSeriesComputed == 0)
        #expect(second.equity == first.equity)
    }
}
