@testable import BacktestCache
import BacktestCore
import BacktestTestSupport
import Foundation
import MarketData
import Testing

/// Numbers for docs/cache.md, not assertions about speed: run with BACKTESTD_CACHE_BENCH=1
/// (ideally `swift test -c release`). Each measurement still checks its answer.
@Suite("Cache measurements", .enabled(if: ProcessInfo.processInfo.environment["BACKTESTD_CACHE_BENCH"] == "1"))
struct CacheMeasurements {
    func median(_ repetitions: Int, _ body: () async throws -> Void) async rethrows -> Double {
        var samples: [Double] = []
        for _ in 0..<repetitions {
            let start = ContinuousClock.now
            try await body()
            let elapsed = ContinuousClock.now - start
            samples.append(elapsed.milliseconds)
        }
        return samples.sorted()[samples.count / 2]
    }

    @Test func redisRoundTripVersusRecomputingAnSMA() async throws {
        let fixture = try CacheFixture("bench-indicator")
        let values = try IndicatorCacheTests.sma50()
        let key = IndicatorCacheKey(ticker: Ticker("SPY")!, indicator: "sma:50", adjustment: .split, source: "files", from: date("1999-11-01"), through: date("2020-08-28"))
        let redisOnly = fixture.makeCache(clock: ManualClock(unixSeconds: mondayNoon))
        let withLocal = fixture.makeCache(clock: ManualClock(unixSeconds: mondayNoon), localCacheBytes: 64 << 20)
        let session = await redisOnly.openSession()
        await IndicatorCache(cache: redisOnly).put(key, values: values, session: session)
        let localSession = await withLocal.openSession()
        await IndicatorCache(cache: withLocal).put(key, values: values, session: localSession)
        var sink = 0.0
        let close = try SharedBarsProvider.expected("SPY", date("1999-11-01")...date("2020-08-28")).close
        let recompute = await median(51) { sink += IndicatorCacheTests.sma50(close).last ?? 0 }
        let redis = await median(51) { sink += await IndicatorCache(cache: redisOnly).get(key, session: session)?.last ?? 0 }
        let local = await median(51) { sink += await IndicatorCache(cache: withLocal).get(key, session: localSession)?.last ?? 0 }
        print("MEASURE sma50 over \(values.count) points: recompute \(recompute) ms, redis GET+decode \(redis) ms, process memory \(local) ms (sink \(sink))")
        #expect(sink.isFinite)
        await session.finish()
        await localSession.finish()
        await redisOnly.shutdown()
        await withLocal.shutdown()
    }

    @Test func warmBacktestQuery() async throws {
        let fixture = try CacheFixture("bench-bars")
        let source = SharedBarsProvider()
        let query = BarQuery(symbols: ["AAPL", "MSFT", "SPY"], range: date("2000-01-03")...date("2020-08-28"), adjustment: .split)
        let redisOnly = fixture.makeCache(clock: ManualClock(unixSeconds: mondayNoon))
        let withLocal = fixture.makeCache(clock: ManualClock(unixSeconds: mondayNoon), localCacheBytes: 64 << 20)
        let viaRedis = CachedMarketData(upstream: source, cache: redisOnly)
        let viaLocal = CachedMarketData(upstream: source, cache: withLocal)
        let source2 = SharedBarsProvider()
        let direct = try await median(21) { _ = try await source2.dailyBars(query) }
        _ = try await viaRedis.dailyBars(query, session: await redisOnly.openSession())
        func timed(_ data: CachedMarketData, _ cache: MarketDataCache) async throws -> Double {
            try await median(21) {
                let session = await cache.openSession()
                let answer = try await data.dailyBars(query, session: session)
                #expect(answer.bars.count == 3)
                await session.finish()
            }
        }
        let redis = try await timed(viaRedis, redisOnly)
        _ = try await timed(viaLocal, withLocal)
        let local = try await timed(viaLocal, withLocal)
        print("MEASURE warm query 3 tickers x 20 years (744 month keys): source (CSV in memory, adjusted) \(direct) ms, redis \(redis) ms, process memory \(local) ms")
        await redisOnly.shutdown()
        await withLocal.shutdown()
    }
}

