@testable import BacktestCache
import BacktestCore
import BacktestTestSupport
import Foundation
import MarketData
import Testing

@Suite("Redis going away, hanging, and coming back")
struct ResilienceTests {
    let query = BarQuery(symbols: ["IBM", "PG"], range: date("2015-01-02")...date("2016-12-30"), adjustment: .split)

    func run(_ data: CachedMarketData, _ cache: MarketDataCache) async throws -> (BarSet, CacheStatistics, Bool) {
        let session = await cache.openSession()
        let answer = try await data.dailyBars(query, session: session)
        return (answer, await session.finish(), session.isCaching)
    }

    func expectComplete(_ answer: BarSet) throws {
        #expect(answer.bars["IBM"] == (try SharedBarsProvider.expected("IBM", query.range)))
        #expect(answer.bars["PG"] == (try SharedBarsProvider.expected("PG", query.range)))
    }

    @Test func redisStoppedMidRunThenRestarted() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("redis-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let fixture = try CacheFixture("down", ownServer: true, dataDirectory: directory)
        let server = try #require(fixture.server)
        let source = SharedBarsProvider()
        let cache = fixture.makeCache(clock: ManualClock(unixSeconds: mondayNoon))  // no process memory
        let data = CachedMarketData(upstream: source, cache: cache)
        _ = try await run(data, cache)
        #expect(source.callCount == 1)

        let midRun = await cache.openSession()  // a backtest that started while Redis was up
        server.stop()
        let answerMidRun = try await data.dailyBars(query, session: midRun)
        try expectComplete(answerMidRun)
        #expect(await midRun.finish().hits == 0)
        #expect(source.callCount == 2)
        for attempt in 2...5 {
            let (answer, stats, _) = try await run(data, cache)
            try expectComplete(answer)
            #expect(stats.hits == 0)
            #expect(source.callCount == 1 + attempt, "every backtest is answered by the source while Redis is down")
        }
        #expect(fixture.log.messages.filter { $0.contains("continuing without the cache") }.count == 1, "logged once, not per key")

        try server.start()
        // Reconnection waits for the backoff (<= 100 ms here); poll real requests until it happens.
        let deadline = ContinuousClock.now + .seconds(10)
        var reconnected = false
        while !reconnected && ContinuousClock.now < deadline {
            reconnected = try await run(data, cache).2
        }
        #expect(reconnected)
        let calls = source.callCount
        let (answer, stats, _) = try await run(data, cache)
        try expectComplete(answer)
        #expect(stats.hits == 48 && stats.misses == 0, "the snapshot Redis kept is used again")
        #expect(source.callCount == calls)
        #expect(fixture.log.messages.contains { $0.contains("reachable again") })
        await cache.shutdown()
    }

    @Test func hungRedisCannotStallARequest() async throws {
        let fixture = try CacheFixture("hung", ownServer: true)
        let server = try #require(fixture.server)
        let source = SharedBarsProvider()
        let cache = fixture.makeCache(clock: ManualClock(unixSeconds: mondayNoon))
        let data = CachedMarketData(upstream: source, cache: cache)
        _ = try await run(data, cache)

        server.pause()  // connections stay open, nothing answers: only timeouts get us out
        defer { server.resume() }
        for _ in 0..<3 {
            let (answer, _, _) = try await run(data, cache)
            try expectComplete(answer)
        }
        #expect(source.callCount == 4)
        #expect(!(cache.pool?.isAvailable ?? true), "the pool fails fast after the first timeout")
        await cache.shutdown()
    }

    @Test func cachedDataSurvivesARestartOfOurServer() async throws {
        let fixture = try CacheFixture("restart")
        let source = SharedBarsProvider()
        let first = fixture.makeCache(clock: ManualClock(unixSeconds: mondayNoon), localCacheBytes: 8 << 20)
        _ = try await run(CachedMarketData(upstream: source, cache: first), first)
        await first.shutdown()
        // A new process: new pool, empty process memory, same Redis.
        let second = fixture.makeCache(clock: ManualClock(unixSeconds: mondayNoon), localCacheBytes: 8 << 20)
        let (answer, stats, _) = try await run(CachedMarketData(upstream: source, cache: second), second)
        try expectComplete(answer)
        #expect(stats.hits == 48 && source.callCount == 1)
        await second.shutdown()
    }

    @Test func disabledCachePassesEverythingThrough() async throws {
        let source = SharedBarsProvider()
        let cache = MarketDataCache(redis: nil, clock: ManualClock(unixSeconds: mondayNoon))
        let data = CachedMarketData(upstream: source, cache: cache)
        for _ in 0..<2 {
            let (answer, stats, caching) = try await run(data, cache)
            try expectComplete(answer)
            #expect(!caching && stats.hits == 0 && stats.misses == 48)
        }
        #expect(source.callCount == 2)
    }
}
