import BacktestCache
import BacktestCore
import BacktestEngine
import BacktestModel
import BacktestProtocol
import BacktestTestSupport
import Foundation
import Logging
import MarketData
import Testing

@testable import BacktestService

/// Issue 10, part 3: one execution path. A single backtest is a batch of one; the shared phase
/// (and its `PreparedMarket`) is built once per call; each variant is validated once; the cache
/// session is scoped and ends however the call ends.
@Suite struct ExecutionPathTests {
    static let settings = BacktestSettings(start: TradingDate(iso: "2010-01-04")!, end: TradingDate(iso: "2014-12-31")!)

    static func quietLogger() -> Logger {
        var logger = Logger(label: "test.execution")
        logger.logLevel = .critical
        return logger
    }

    static func pipeline(observer: CountingObserver, source: (any MarketDataProvider)? = nil,
                         cache: MarketDataCache? = nil) throws -> BacktestPipeline {
        BacktestPipeline(source: try source ?? LocalFilesProvider(directory: SharedData.dailyDirectory), cache: cache,
                         logger: quietLogger(), observer: observer)
    }

    /// The service's batch for `variants`, every update collected.
    static func runBatch(_ variants: [Strategy], on pipeline: BacktestPipeline) async throws -> [ProgressUpdate] {
        let service = EngineBacktestService(pipeline: pipeline, serverVersion: "test")
        let updates = UpdateLog()
        try await service.runBatch(
            BatchRequest(variants: variants, settings: settings), context: CallContext(streamID: 1, logger: quietLogger()),
            emit: { await updates.append($0) })
        return await updates.updates
    }

    @Test func aBatchPreparesTheMarketOnceAndValidatesEachVariantOnce() async throws {
        let observer = CountingObserver()
        var variants = BatchFixture.smaVariants(6)
        variants[2].positions[0].weight = 1.5  // rejected at validation, never simulated
        let updates = try await Self.runBatch(variants, on: try Self.pipeline(observer: observer))

        #expect(updates.last?.state == .final)
        let outcomes = updates.flatMap(\.results)
        #expect(outcomes.count == 6)
        #expect(outcomes.filter { if case .failure = $0.outcome { true } else { false } }.map(\.index) == [2])
        #expect(observer.marketsPrepared == 1, "one PreparedMarket per batch, shared by the five simulations")
        #expect(observer.validations == [0: 1, 1: 1, 3: 1, 4: 1, 5: 1], "each valid variant validated exactly once")
    }

    @Test func aSingleBacktestIsABatchOfOne() async throws {
        let observer = CountingObserver()
        let pipeline = try Self.pipeline(observer: observer)
        let strategy = BatchFixture.smaVariants(3, tickers: ["AAPL", "KO"])[2]
        let single = try await pipeline.runBacktest(strategy, settings: Self.settings)
        #expect(observer.marketsPrepared == 1)
        #expect(observer.validations == [0: 1])

        let updates = try await Self.runBatch([strategy], on: pipeline)
        #expect(observer.marketsPrepared == 2)
        #expect(observer.validations == [0: 2])
        let batched = try #require(updates.flatMap(\.results).first).outcome.get()

        // Bit for bit: every series, order, metric and warning; the statistics but for timings.
        #expect(single.equity.map(\.bitPattern) == batched.equity.map(\.bitPattern))
        #expect(single.benchmark.map(\.bitPattern) == batched.benchmark.map(\.bitPattern))
        #expect(String(reflecting: Self.untimed(single)) == String(reflecting: Self.untimed(batched)))
        #expect(single.stats.barsProcessed > 0)
    }

    @Test func aSingleBacktestKeepsItsFieldPaths() async throws {
        let observer = CountingObserver()
        let pipeline = try Self.pipeline(observer: observer)
        var strategy = BatchFixture.smaVariants(1)[0]
        strategy.positions[1].weight = 0
        let error = await #expect(throws: BacktestError.self) { _ = try await pipeline.runBacktest(strategy, settings: Self.settings) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.field == "run_backtest.strategy.positions[1].weight")
        #expect(observer.marketsPrepared == 0 && observer.validations.isEmpty)

        var late = Self.settings
        late.end = late.start.advanced(by: -1)
        let settingsError = await #expect(throws: BacktestError.self) {
            _ = try await pipeline.runBacktest(BatchFixture.smaVariants(1)[0], settings: late)
        }
        #expect(settingsError?.field == "run_backtest.settings.end_date")
    }

    @Test func theCacheSessionEndsWhenTheDataPhaseThrows() async throws {
        let observer = CountingObserver()
        let cache = MarketDataCache(redis: nil, logger: Self.quietLogger())
        let pipeline = try Self.pipeline(observer: observer, source: FailingProvider(), cache: cache)
        let error = await #expect(throws: BacktestError.self) {
            _ = try await pipeline.runBacktest(BatchFixture.smaVariants(1)[0], settings: Self.settings)
        }
        #expect(error?.code == .unavailable)
        #expect(observer.sessionsOpened == 1)
        #expect(observer.sessionsFinished == 1)
        #expect(observer.marketsPrepared == 0)
    }

    @Test func anUnderlyingCauseIsLoggedNeverSentToTheClient() async throws {
        let pipeline = try Self.pipeline(observer: CountingObserver(), source: FailingProvider(error: SecretFailure()))
        let error = await #expect(throws: BacktestError.self) {
            _ = try await pipeline.runBacktest(BatchFixture.smaVariants(1)[0], settings: Self.settings)
        }
        #expect(error?.code == .unavailable)
        #expect(error?.message == "market data could not be loaded")
        #expect(error?.cause is SecretFailure)
        #expect(error?.description.contains("10.0.0.7") == false)
        #expect(error?.logDescription.contains("10.0.0.7") == true, "the log keeps the cause")
        let status = CallStatus(try #require(error))
        #expect(!status.message.contains("10.0.0.7"))
    }

    /// The result with every timing zeroed (they differ between any two runs).
    static func untimed(_ result: BacktestResult) -> BacktestResult {
        var result = result
        result.stats.totalMs = 0
        result.stats.analysisMs = 0
        result.stats.dataMs = 0
        result.stats.indicatorsMs = 0
        result.stats.simulationMs = 0
        return result
    }
}

/// Counts what the pipeline reports.
final class CountingObserver: PipelineObserver, @unchecked Sendable {
    private let lock = NSLock()
    private var validated: [Int: Int] = [:]
    private var markets = 0
    private var opened = 0
    private var finished = 0

    var validations: [Int: Int] { lock.withLock { validated } }
    var marketsPrepared: Int { lock.withLock { markets } }
    var sessionsOpened: Int { lock.withLock { opened } }
    var sessionsFinished: Int { lock.withLock { finished } }

    func validated(variant: Int) { lock.withLock { validated[variant, default: 0] += 1 } }
    func preparedMarket() { lock.withLock { markets += 1 } }
    func cacheSession(opened isOpen: Bool) { lock.withLock { if isOpen { opened += 1 } else { finished += 1 } } }
}

actor UpdateLog {
    var updates: [ProgressUpdate] = []
    func append(_ update: ProgressUpdate) { updates.append(update) }
}

/// A source that is always down.
struct FailingProvider: MarketDataProvider {
    var error: any Error = BacktestError(.unavailable, "the vendor is down")
    var name: String { "failing" }
    var dataEpoch: TradingDate { TradingDate(iso: "2005-01-03")! }
    func dailyBars(_ query: BarQuery) async throws -> BarSet {
        throw error
    }
}

/// An internal error whose text must stay on the server.
struct SecretFailure: Error, CustomStringConvertible {
    var description: String { "connect to 10.0.0.7:6379 refused" }
}
