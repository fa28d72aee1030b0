@testable import BacktestCache
import BacktestCore
import BacktestTestSupport
import MarketData
import Testing

@Suite("Purges: consistency and schedule")
struct PurgeTests {
    let query = BarQuery(symbols: ["AAPL", "XOM"], range: date("2019-01-02")...date("2019-12-31"), adjustment: .split)

    @Test func requestRunningDuringAPurgeKeepsItsGenerationAndSweepSparesOtherKeys() async throws {
        let fixture = try CacheFixture("purge")
        let cache = fixture.makeCache(clock: ManualClock(unixSeconds: mondayNoon), localCacheBytes: 16 << 20)
        let source = SharedBarsProvider()
        let data = CachedMarketData(upstream: source, cache: cache)
        let raw = fixture.rawPool()
        // Keys the sweep must leave alone: another deployment's, and our generation counter.
        _ = try await raw.execute(RedisCommand("SET", "other-\(fixture.prefix):v\(CacheSchema.version):g0:bars:x", "keep"))

        let warmup = await cache.openSession()
        _ = try await data.dailyBars(query, session: warmup)
        await warmup.finish()
        let oldKeys = try await fixture.keys(raw, pattern: "\(fixture.prefix):v\(CacheSchema.version):g0:*")
        #expect(oldKeys.count == 24)

        // A long request opens before the purge...
        let running = await cache.openSession()
        #expect(running.generation == 0)
        let purge = Task { try await cache.purge() }
        // ...and the purge, having bumped the generation, waits for it before sweeping.
        var newSession = await cache.openSession()
        // Generous: a safety net for a loaded machine, not a timing assertion.
        let deadline = ContinuousClock.now + .seconds(60)
        // The INCR is one round trip away; each check is a real read of the generation.
        while newSession.generation == 0 && ContinuousClock.now < deadline {
            await newSession.finish()
            await Task.yield()
            newSession = await cache.openSession()
        }
        #expect(newSession.generation == 1)
        let during = try await data.dailyBars(query, session: running)
        #expect(running.statistics.hits == 24 && running.statistics.misses == 0, "the old generation is still whole")
        #expect(during.bars["XOM"] == (try SharedBarsProvider.expected("XOM", query.range)))
        let fresh = try await data.dailyBars(query, session: newSession)
        #expect(newSession.statistics.hits == 0, "a request after the purge sees an empty generation")
        #expect(fresh.bars["AAPL"] == (try SharedBarsProvider.expected("AAPL", query.range)))
        await newSession.finish()
        #expect(try await fixture.keys(raw, pattern: "\(fixture.prefix):v\(CacheSchema.version):g0:*").count == 24, "not swept while in use")

        await running.finish()
        let result = try await purge.value
        #expect(result == PurgeResult(removedEntries: 24, generation: 1))
        #expect(try await fixture.keys(raw, pattern: "\(fixture.prefix):v\(CacheSchema.version):g0:*").isEmpty)
        #expect(try await fixture.keys(raw, pattern: "\(fixture.prefix):v\(CacheSchema.version):g1:*").count == 24)
        #expect(try await raw.execute(RedisCommand("GET", "other-\(fixture.prefix):v\(CacheSchema.version):g0:bars:x")) == .bulk(Array("keep".utf8)))
        #expect(try await raw.execute(RedisCommand("GET", "\(fixture.prefix):v\(CacheSchema.version):generation")).integer == 1)
        await raw.shutdown()
        await cache.shutdown()
    }

    @Test func purgeAlsoEmptiesTheProcessMemoryLayer() async throws {
        let fixture = try CacheFixture("purge-local")
        let cache = fixture.makeCache(clock: ManualClock(unixSeconds: mondayNoon), localCacheBytes: 16 << 20)
        let indicators = IndicatorCache(cache: cache)
        let key = IndicatorCacheKey(ticker: Ticker("AAPL")!, indicator: "sma:50", adjustment: .split, source: "alpaca", from: date("1999-11-01"), through: date("2021-04-01"))
        let before = await cache.openSession()
        #expect(await indicators.put(key, values: [1, 2, .nan], session: before))
        #expect(await indicators.get(key, session: before)?.count == 3)
        await before.finish()
        let result = try await cache.purge()
        #expect(result.removedEntries == 1)
        #expect(cache.local.count == 0)
        let after = await cache.openSession()
        #expect(await indicators.get(key, session: after) == nil)
        await after.finish()
        await cache.shutdown()
    }

    @Test(arguments: [
        // Spring forward (Sunday 2026-03-08): 4 PM EST, 8 PM EST, then 4 PM and 8 PM EDT.
        (start: Int64(1_772_902_800), expected: [Int64(1_772_917_200), 1_772_931_600, 1_773_000_000, 1_773_014_400]),
        // Fall back (Sunday 2026-11-01): 4 PM EDT, 8 PM EDT, then 4 PM and 8 PM EST.
        (start: Int64(1_793_462_400), expected: [Int64(1_793_476_800), 1_793_491_200, 1_793_566_800, 1_793_581_200]),
    ])
    func scheduleFollowsNewYorkWallClockAcrossDST(start: Int64, expected: [Int64]) async throws {
        let fixture = try CacheFixture("schedule")
        let clock = ManualClock(unixSeconds: start)
        let cache = fixture.makeCache(clock: clock)
        let scheduler = PurgeScheduler(cache: cache, logger: fixture.log.logger("purge"))
        let running = Task { await scheduler.run() }
        var slept: [Int64] = []
        for deadline in expected {
            let next = try await clock.nextSleepDeadline()
            slept.append(next)
            clock.advance(toUnixSeconds: deadline)
        }
        _ = try await clock.nextSleepDeadline()  // the fourth purge has finished once the fifth sleep starts
        clock.cancelSleepers()
        await running.value
        #expect(slept == expected)
        let purges = fixture.log.messages.filter { $0.hasPrefix("Cache purged at") }
        #expect(purges == [
            "Cache purged at 4:00 PM ET (0 entries)", "Cache purged at 8:00 PM ET (0 entries)",
            "Cache purged at 4:00 PM ET (0 entries)", "Cache purged at 8:00 PM ET (0 entries)",
        ])
        let raw = fixture.rawPool()
        #expect(try await raw.execute(RedisCommand("GET", "\(fixture.prefix):v\(CacheSchema.version):generation")).integer == 4)
        await raw.shutdown()
        await cache.shutdown()
    }

    @Test func nextPurgeIsComputedFromWallClockNotByAddingHours() {
        // 2026-03-07 20:00 EST -> next is 2026-03-08 16:00 EDT, 19 hours later (not 20).
        let next = PurgeScheduler.nextPurge(after: 1_772_931_600)
        #expect(next.unixSeconds == 1_773_000_000)
        #expect(next.label == "4:00 PM ET")
    }

    @Test func aPurgeMissedWhileRedisIsDownIsRetriedUntilItSucceeds() async throws {
        let fixture = try CacheFixture("missed", ownServer: true)
        let server = try #require(fixture.server)
        let fourPM = Int64(1_772_917_200)  // 2026-03-07 16:00 EST
        let clock = ManualClock(unixSeconds: fourPM - 3600)
        let cache = fixture.makeCache(clock: clock)
        let scheduler = PurgeScheduler(cache: cache, logger: fixture.log.logger("purge"))
        let running = Task { await scheduler.run() }
        #expect(try await clock.nextSleepDeadline() == fourPM)
        server.stop()
        clock.advance(toUnixSeconds: fourPM)
        #expect(try await clock.nextSleepDeadline() == fourPM + 60, "a failed purge is retried a minute later")
        clock.advance(toUnixSeconds: fourPM + 60)
        #expect(try await clock.nextSleepDeadline() == fourPM + 120)
        try server.start()
        // The pool reconnects after a short real-time backoff: wait for it with real requests.
        // The bound is generous (the backoff is at most 10 s, and on a loaded machine the probe's
        // task may wait to be scheduled): a safety net, not a timing check.
        let data = CachedMarketData(upstream: SharedBarsProvider(), cache: cache)
        let query = BarQuery(symbols: ["IBM"], range: date("2020-01-02")...date("2020-03-31"), adjustment: .split)
        let deadline = ContinuousClock.now + .seconds(60)
        var reconnected = false
        while !reconnected && ContinuousClock.now < deadline {
            let session = await cache.openSession()
            _ = try await data.dailyBars(query, session: session)
            reconnected = session.isCaching
            await session.finish()
        }
        try #require(reconnected)
        clock.advance(toUnixSeconds: fourPM + 120)
        #expect(try await clock.nextSleepDeadline() == fourPM + 4 * 3600, "once the retry succeeded, the 8 PM purge is next")
        #expect(fixture.log.messages.filter { $0.hasPrefix("Cache purge at 4:00 PM ET failed") }.count == 2)
        #expect(fixture.log.messages.contains { $0.hasPrefix("Cache purged at 4:00 PM ET (retried)") })
        clock.cancelSleepers()
        await running.value
        await cache.shutdown()
    }
}
