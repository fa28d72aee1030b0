import BacktestCache
import BacktestCore
import BacktestModel
import BacktestTestSupport
import Foundation
import MarketData
import Testing

@testable import BacktestService

/// The whole path of a backtest on the real shared data: files provider → (Redis cache) →
/// indicators → engine, checked against the vectorbt reference and for cache behaviour.
@Suite struct BacktestPipelineTests {
    struct Case {
        var file: StrategyFile
        var finalEquity: Double
        var equity: [Double]
    }

    static func referenceCases() throws -> [Case] {
        let data = try Data(contentsOf: SharedData.referenceDirectory.appendingPathComponent("backtests.json"))
        let list = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        return try list.map { entry in
            let caseData = try JSONSerialization.data(withJSONObject: try #require(entry["case"]))
            let expected = try #require(entry["expected"] as? [String: Any])
            return Case(
                file: try StrategyFile.decode(caseData),
                finalEquity: try #require(expected["final_equity"] as? Double),
                equity: try #require(expected["equity"] as? [Double]))
        }
    }

    func settings(_ file: StrategyFile) throws -> BacktestSettings {
        file.settings(defaults: BacktestSettings(start: try #require(file.start), end: try #require(file.end)))
    }

    func filesProvider() throws -> LocalFilesProvider {
        try LocalFilesProvider(directory: SharedData.dailyDirectory)
    }

    @Test func reproducesTheReferenceBacktestsThroughTheFilesProvider() async throws {
        let pipeline = BacktestPipeline(source: try filesProvider(), cache: nil)
        for reference in try Self.referenceCases() {
            let result = try await pipeline.runBacktest(reference.file.strategy, settings: try settings(reference.file))
            #expect(result.equity.count == reference.equity.count)
            #expect(abs(result.finalEquity - reference.finalEquity) <= 1e-6 * reference.finalEquity)
            #expect(result.stats.dataSource == "files")
            #expect(result.stats.engine == "v2")
            #expect(result.stats.indicatorSeries >= 1)
            #expect(result.stats.apiCalls == 0)
        }
    }

    @Test func secondIdenticalRunIsServedFromRedisAndGivesTheSameResult() async throws {
        // A server of its own, stopped however the test ends. (This test used to construct one,
        // which starts it, then call start() again: the second server could not bind, the PONG of
        // the first was taken for its own, and the first was never stopped: issue 18's leak.)
        try await withRedisServer { redis in
            // No in-process layer: the second run must really come from Redis.
            let cache = MarketDataCache(
                redis: RedisConfiguration(port: redis.port),
                options: CacheOptions(keyPrefix: RedisServerProcess.uniquePrefix("pipeline"), localCacheBytes: 0))
            let pipeline = BacktestPipeline(source: try filesProvider(), cache: cache)
            let reference = try #require(try Self.referenceCases().first)
            let cold: BacktestResult, warm: BacktestResult
            do {
                cold = try await pipeline.runBacktest(reference.file.strategy, settings: try settings(reference.file))
                warm = try await pipeline.runBacktest(reference.file.strategy, settings: try settings(reference.file))
                await cache.shutdown()
            } catch {
                await cache.shutdown()
                throw error
            }
            #expect(cold.stats.cacheMisses > 0)
            #expect(warm.stats.cacheMisses == 0, "every month and series of a 2005-2019 backtest is older than T-2")
            #expect(warm.stats.cacheHits == cold.stats.cacheHits + cold.stats.cacheMisses)
            #expect(warm.stats.cacheHitRate == 1)
            #expect(warm.equity == cold.equity)
            #expect(warm.orders == cold.orders)
        }
    }

    @Test func aBatchSharesOneDataQueryAndEachIndicatorSeriesOnce() async throws {
        let counting = CountingProvider(base: try filesProvider())
        let pipeline = BacktestPipeline(source: counting, cache: nil)
        let fast = [20.0, 50.0, 20.0]
        let variants = fast.map { length in
            Strategy(name: "sma \(length)", positions: [Position(
                ticker: "MSFT", weight: 1,
                entry: .compare(
                    lhs: .series(SeriesRef(source: .indicator(IndicatorSpec(type: "sma", params: [length])))),
                    op: .greater,
                    rhs: .series(SeriesRef(source: .indicator(IndicatorSpec(type: "sma", params: [200]))))))])
        }
        let settings = BacktestSettings(start: TradingDate(iso: "2010-01-04")!, end: TradingDate(iso: "2015-12-31")!)
        let valid = try pipeline.validate(variants, settings: settings, paths: .runBatch).map { try $0.get() }
        let prepared = try await pipeline.prepare(valid, settings: settings)
        #expect(await counting.queries.count == 1)
        #expect(await counting.queries.first?.symbols == ["MSFT", "SPY"])
        #expect(prepared.indicators.count == 3, "sma:20, sma:50, sma:200, each once")
        for (index, variant) in variants.enumerated() {
            let batched = try pipeline.simulate(valid[index], in: prepared)
            let alone = try await pipeline.runBacktest(variant, settings: settings)
            #expect(batched.equity == alone.equity, "variant \(index) equals running it alone")
        }
    }

    @Test func invalidStrategiesNameTheVariantField() async throws {
        let pipeline = BacktestPipeline(source: try filesProvider(), cache: nil)
        let good = Strategy(positions: [Position(ticker: "AAPL", weight: 0.5, entry: .compare(lhs: .series(SeriesRef(source: .field(.close))), op: .greater, rhs: .number(0)))])
        var bad = good
        bad.positions[0].weight = 1.5
        let settings = BacktestSettings(start: TradingDate(iso: "2010-01-04")!, end: TradingDate(iso: "2010-12-31")!)
        let outcomes = pipeline.validate([good, bad], settings: settings, paths: .runBatch)
        #expect(throws: Never.self) { try outcomes[0].get() }
        let rejection = #expect(throws: Rejection.self) { try outcomes[1].get() }
        let error = rejection?.error
        #expect(rejection?.index == 1)
        #expect(error?.code == .invalidArgument)
        #expect(error?.field == "run_batch.variants[1].positions[0].weight")
    }

    @Test func anUnknownTickerIsNotFoundNamingIt() async throws {
        let pipeline = BacktestPipeline(source: try filesProvider(), cache: nil)
        let strategy = Strategy(positions: [Position(ticker: "NOSUCH", weight: 1, entry: .compare(lhs: .series(SeriesRef(source: .field(.close))), op: .greater, rhs: .number(0)))])
        let settings = BacktestSettings(start: TradingDate(iso: "2010-01-04")!, end: TradingDate(iso: "2010-12-31")!)
        let error = await #expect(throws: BacktestError.self) { _ = try await pipeline.runBacktest(strategy, settings: settings) }
        #expect(error?.code == .notFound)
        #expect(error?.message.contains("NOSUCH") == true)
    }
}

/// Records the queries that reach the source (a real provider underneath).
actor QueryLog {
    var queries: [BarQuery] = []
    func append(_ query: BarQuery) { queries.append(query) }
}

struct CountingProvider: MarketDataProvider {
    let base: any MarketDataProvider
    let log = QueryLog()
    var name: String { base.name }
    var dataEpoch: TradingDate { base.dataEpoch }
    var queries: [BarQuery] { get async { await log.queries } }

    func dailyBars(_ query: BarQuery) async throws -> BarSet {
        await log.append(query)
        return try await base.dailyBars(query)
    }
}
