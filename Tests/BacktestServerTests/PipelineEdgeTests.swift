import BacktestCore
import BacktestModel
import BacktestTestSupport
import Foundation
import MarketData
import Testing

@testable import BacktestService

/// Issue 14 items 2 and 9 through the whole pipeline (files provider, no cache).
@Suite struct PipelineEdgeTests {
    static let hold = Condition.compare(
        lhs: .series(SeriesRef(source: .field(.close))), op: .greater, rhs: .number(0))

    func pipeline() throws -> BacktestPipeline {
        BacktestPipeline(source: try LocalFilesProvider(directory: SharedData.dailyDirectory), cache: nil)
    }

    @Test("AAPL 0.5 + FB 0.5 in 2010-2011 (FB lists 2012-05-18): FB never trades, a warning says why")
    func lateListing() async throws {
        let strategy = Strategy(positions: [
            Position(ticker: "AAPL", weight: 0.5, entry: Self.hold),
            Position(ticker: "FB", weight: 0.5, entry: Self.hold),
        ], fill: .close)
        let settings = BacktestSettings(start: TradingDate(iso: "2010-01-04")!, end: TradingDate(iso: "2011-12-30")!)
        let result = try await pipeline().runBacktest(strategy, settings: settings)
        #expect(result.orders.map(\.ticker) == ["AAPL"])
        #expect(result.warnings.contains { $0.message.contains("FB has no bars in 2010-01-04...2011-12-30") && $0.message.contains("2012-05-18") }, "\(result.warnings)")
        #expect(!result.warnings.contains { $0.message.contains("no data from files for FB") })
        // An unknown ticker is still NOT_FOUND.
        var typo = strategy
        typo.positions[1].ticker = "NOPE"
        await #expect(throws: BacktestError.self) { try await pipeline().runBacktest(typo, settings: settings) }
    }

    @Test("GOOGL (the issue's NFLX kind) on a 2015-only window: no listing warning measured from the source's epoch, no warning twice")
    func listingWarningsFromTheWindow() async throws {
        let strategy = Strategy(positions: [Position(ticker: "GOOGL", weight: 1, entry: Self.hold)], fill: .close)
        let settings = BacktestSettings(start: TradingDate(iso: "2015-01-02")!, end: TradingDate(iso: "2015-12-31")!)
        let result = try await pipeline().runBacktest(strategy, settings: settings)
        #expect(!result.warnings.contains { $0.message.contains("no data before") || $0.message.contains("no bars before") }, "\(result.warnings)")
        #expect(Set(result.warnings).count == result.warnings.count)
        // A window that does start before the listing is warned once, relative to the window.
        let early = BacktestSettings(start: TradingDate(iso: "2004-01-02")!, end: TradingDate(iso: "2004-12-31")!)
        let listed = try await pipeline().runBacktest(strategy, settings: early)
        let listing = listed.warnings.filter { $0.message.contains("GOOGL") && $0.message.contains("before 2004-08-19") }
        #expect(listing.count == 1 && listing[0].message.contains("requested start 2004-01-02"), "\(listed.warnings)")
    }

    @Test("a weekend-only window says it has no trading day, not where the data ends")
    func weekendWindow() async throws {
        let strategy = Strategy(positions: [Position(ticker: "AAPL", weight: 1, entry: Self.hold)])
        let settings = BacktestSettings(start: TradingDate(iso: "2010-03-06")!, end: TradingDate(iso: "2010-03-07")!)
        do {
            _ = try await pipeline().runBacktest(strategy, settings: settings)
            Issue.record("ran")
        } catch let error as BacktestError {
            #expect(error.message.contains("no trading day"), "\(error.message)")
            #expect(!error.message.contains("2010-03-05"), "\(error.message)")
        }
    }

    @Test("a next_open entry signalled on the last bar is warned, not dropped silently")
    func nextOpenOnTheLastBar() async throws {
        // close > the close itself minus nothing: true only where close crosses above its sma:5 —
        // simpler: an entry true on every day, window of one day, next_open: signalled, never filled.
        let strategy = Strategy(positions: [Position(ticker: "AAPL", weight: 1, entry: Self.hold)], fill: .nextOpen)
        let settings = BacktestSettings(start: TradingDate(iso: "2015-06-01")!, end: TradingDate(iso: "2015-06-05")!)
        let result = try await pipeline().runBacktest(strategy, settings: settings)
        // Held since the second day: the entry on the last day asks nothing (already held) ...
        #expect(!result.warnings.contains { $0.message.contains("signalled on the last day") })
        // ... but an exit signalled on the last day is.
        var exiting = strategy
        exiting.positions[0].exit = .compare(
            lhs: .series(SeriesRef(source: .field(.close))), op: .greater, rhs: .number(0))
        exiting.positions[0].entry = .compare(
            lhs: .series(SeriesRef(source: .field(.close))), op: .less, rhs: .number(0))
        let flat = try await pipeline().runBacktest(exiting, settings: settings)
        #expect(!flat.warnings.contains { $0.message.contains("signalled on the last day") })
        var entering = strategy
        entering.positions[0].entry = .compare(
            lhs: .series(SeriesRef(source: .field(.close))), op: .greater, rhs: .number(0))
        let oneDay = BacktestSettings(start: TradingDate(iso: "2015-06-05")!, end: TradingDate(iso: "2015-06-05")!)
        let last = try await pipeline().runBacktest(entering, settings: oneDay)
        #expect(last.orders.isEmpty)
        #expect(last.warnings.contains { $0.message.contains("AAPL: next_open order(s) signalled on the last day 2015-06-05 not filled") }, "\(last.warnings)")
    }
}
