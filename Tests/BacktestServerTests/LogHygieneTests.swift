import BacktestCore
import BacktestEngine
import BacktestModel
import BacktestTestSupport
import Foundation
import Logging
import MarketData
import Synchronization
import Testing

@testable import BacktestService

/// What the server logs about client data (issue 12, failure 5): a strategy name cannot forge a
/// log line or flood the log, and a batch's repeated data warnings are one line, not one per
/// variant.
@Suite struct LogHygieneTests {
    /// The shared files, with every ticker but SPY (the benchmark) listed on 2017-06-01: each
    /// variant's simulation warns that they start late.
    struct LateListingProvider: MarketDataProvider {
        let base: LocalFilesProvider
        let listed = TradingDate(year: 2017, month: 6, day: 1)!
        var name: String { "late-listing" }
        var dataEpoch: TradingDate { base.dataEpoch }
        func dailyBars(_ query: BarQuery) async throws -> BarSet {
            var answer = try await base.dailyBars(query)
            for symbol in query.symbols where symbol != "SPY" {
                answer.bars[symbol] = answer.bars[symbol].map { $0.slice(indices: $0.lowerBound(listed)..<$0.dates.count) }
            }
            return answer
        }
    }

    static let settings = BacktestSettings(
        start: TradingDate(year: 2017, month: 1, day: 3)!, end: TradingDate(year: 2017, month: 12, day: 29)!)

    func strategy(_ name: String, tickers: [String]) -> Strategy {
        Strategy(name: name, positions: tickers.map { ticker in
            Position(ticker: ticker, weight: 1 / Double(tickers.count), entry: .compare(
                lhs: .series(SeriesRef(source: .field(.close))), op: .greater,
                rhs: .series(SeriesRef(source: .indicator(try! IndicatorSpec(parsing: "sma:20"))))))
        })
    }

    @Test func aNameWithANewlineOrThreeMegabytesIsOneShortEscapedLine() async throws {
        let log = LogCapture()
        let pipeline = BacktestPipeline(
            source: try LocalFilesProvider(directory: SharedData.dailyDirectory), cache: nil, logger: log.logger())
        let forged = "x\n2026-11-30T10:00:00+0000 info backtestd : [forged] admin logged in"
        let huge = String(repeating: "N", count: 3_000_000)
        for name in [forged, huge] {
            // Whether a later validation rejects such a name or not, nothing logged may carry it raw.
            _ = try? await pipeline.runBacktest(strategy(name, tickers: ["AAPL"]), settings: Self.settings)
        }
        let messages = log.messages
        #expect(!messages.isEmpty)
        for message in messages {
            #expect(!message.contains("\n") && !message.contains("\r"), "\(message.prefix(200))")
            #expect(message.utf8.count < 2_000, "a \(message.utf8.count)-byte line")
            #expect(!message.hasPrefix("2026-11-30"))
        }
        if messages.contains(where: { $0.contains("backtest 'x") }) {
            #expect(messages.contains { $0.contains(#"backtest 'x\n2026-11-30T10:00:00+0000 info backtestd : [forged]"#) })
            #expect(messages.contains { $0.contains("backtest '\(String(repeating: "N", count: LogText.defaultLimit))…(3000000 bytes)'") })
        }
    }

    @Test func aBatchsRepeatedDataWarningsAreOneLineWithCounts() async throws {
        let log = LogCapture()
        // Threads of its own: the shared ones serve the timing-sensitive server tests running
        // beside this one.
        let threads = ComputeThreads(numberOfThreads: 1)
        let pipeline = BacktestPipeline(
            source: LateListingProvider(base: try LocalFilesProvider(directory: SharedData.dailyDirectory)), cache: nil,
            logger: log.logger(), computeThreads: threads)
        let tickers = ["AAPL", "ABBV", "ABT", "ACN", "AMAT"]
        let variants = (0..<16).map { strategy("v\($0)", tickers: tickers) }
        let results = Mutex<[VariantResult]>([])
        _ = try await pipeline.execute(
            variants, settings: Self.settings, parallelism: 4, label: "batch test", paths: .runBatch,
            rejected: { result in results.withLock { $0.append(result) } },
            finished: { result in results.withLock { $0.append(result) } })
        try await threads.shutdown()

        // Every variant still tells its client of each late ticker ...
        let answers = results.withLock { $0 }
        #expect(answers.count == 16)
        for answer in answers {
            let warnings = try answer.outcome.get().warnings.filter { $0.kind == .startsLate }
            #expect(Set(warnings.flatMap(\.tickers)) == Set(tickers), "\(warnings)")
        }
        // ... but the log says it once: one line, with the count of each kind.
        let lines = log.messages.filter { $0.contains("has no bars before") }
        #expect(lines.count == 1, "\(lines.count) lines")
        let line = try #require(lines.first)
        #expect(line.hasPrefix("batch test: warnings from 16 variants: "), "\(line)")
        #expect(line.contains("\(BacktestWarning.Kind.startsLate): 80 in 16 variants"), "\(line)")
    }
}
