import BacktestCore
import BacktestEngine
import BacktestModel
import BacktestTestSupport
import Foundation
import MarketData
import Testing

@testable import BacktestService

/// What the pipeline tells the client about its data: indicators warming up inside the window
/// (a source whose history starts late, like Alpaca's 2016 epoch), and which field holds a
/// ticker the vendor rejects.
@Suite struct PipelineWarningsTests {
    /// The shared files, but nothing before `dataEpoch`: how Alpaca answers (history from 2016).
    struct LateEpochProvider: MarketDataProvider {
        let base: LocalFilesProvider
        let dataEpoch = TradingDate(year: 2016, month: 1, day: 4)!
        var name: String { "late" }
        func dailyBars(_ query: BarQuery) async throws -> BarSet {
            let start = max(query.range.lowerBound, dataEpoch)
            guard start <= query.range.upperBound else { return BarSet(missing: query.symbols) }
            return try await base.dailyBars(BarQuery(symbols: query.symbols, range: start...query.range.upperBound, adjustment: query.adjustment))
        }
    }

    /// Rejects one symbol the way the Alpaca provider reports Alpaca's 400.
    struct RejectingProvider: MarketDataProvider {
        let name = "rejecting"
        let dataEpoch = TradingDate(year: 2016, month: 1, day: 4)!
        func dailyBars(_ query: BarQuery) async throws -> BarSet {
            throw BacktestError.invalidArgument("invalid ticker '1ABC': Alpaca does not accept it (invalid symbol: 1ABC)", field: "symbols")
        }
    }

    func strategy(_ tickers: [String]) -> Strategy {
        Strategy(positions: tickers.map { ticker in
            Position(ticker: ticker, weight: 1 / Double(tickers.count), entry: .compare(
                lhs: .series(SeriesRef(source: .field(.close))), op: .greater,
                rhs: .series(SeriesRef(source: .indicator(try! IndicatorSpec(parsing: "sma:200"))))))
        })
    }

    @Test func aWindowStartingBeforeTheWarmUpIsWarnedAbout() async throws {
        let pipeline = BacktestPipeline(source: LateEpochProvider(base: try LocalFilesProvider(directory: SharedData.dailyDirectory)), cache: nil)
        let early = BacktestSettings(start: TradingDate(year: 2015, month: 1, day: 2)!, end: TradingDate(year: 2017, month: 12, day: 29)!)
        let result = try await pipeline.runBacktest(strategy(["SPY"]), settings: early)
        let warning = try #require(result.warnings.first { $0.kind == .indicatorWarmUp })
        #expect(warning.tickers == ["SPY"] && warning.dates.first == early.start, "\(warning)")
        #expect(warning.message.hasPrefix("indicators warm up until 2016-10"), "\(warning)")
        #expect(warning.message.contains("sma:200 of SPY") && warning.message.contains("late's data begins 2016-01-04"), "\(warning)")

        let late = BacktestSettings(start: TradingDate(year: 2017, month: 1, day: 3)!, end: TradingDate(year: 2017, month: 12, day: 29)!)
        let settled = try await pipeline.runBacktest(strategy(["SPY"]), settings: late)
        #expect(!settled.warnings.contains { $0.kind == .indicatorWarmUp })
    }

    @Test func aTickerTheVendorRejectsIsReportedAtItsPositionsPath() async throws {
        let pipeline = BacktestPipeline(source: RejectingProvider(), cache: nil)
        let settings = BacktestSettings(start: TradingDate(year: 2017, month: 1, day: 3)!, end: TradingDate(year: 2017, month: 12, day: 29)!)
        let error = await #expect(throws: BacktestError.self) { try await pipeline.runBacktest(strategy(["AAPL", "1abc"]), settings: settings) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.field == "run_backtest.strategy.positions[1].ticker")
    }
}
