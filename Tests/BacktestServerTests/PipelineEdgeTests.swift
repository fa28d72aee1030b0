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
        #expect(result.warnings.contains { $0.contains("FB has no bars in 2010-01-04...2011-12-30") && $0.contains("2012-05-18") }, "\(result.warnings)")
        #expect(!result.warnings.contains { $0.contains("no data from files for FB") })
        // An unknown ticker is still NOT_FOUND.
        var typo = strategy
        typo.positions[1].ticker = "NOPE"
        await #expect(throws: BacktestError.self) { try await pipeline().runBacktest(typo, settings: settings) }
    }
}
