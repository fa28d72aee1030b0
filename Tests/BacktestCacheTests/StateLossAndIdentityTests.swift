@testable import BacktestCache
import BacktestCore
import BacktestTestSupport
import Foundation
import MarketData
import Testing

/// The faults of issue 13, each against a real redis-server: Redis losing its state after
/// purges, FLUSHALL by someone else, several servers on one Redis, edited and foreign data,
/// Redis down from start-up, and a hung Redis.
@Suite("Redis losing its state, shared Redis, and data identity")
struct StateLossAndIdentityTests {
    let query = BarQuery(symbols: ["IBM", "PG"], range: date("2015-01-02")...date("2016-12-30"), adjustment: .split)
    var dataKeys: String { ":v\(CacheSchema.version):g[0-9]*" }

    @discardableResult
    func run(_ data: CachedMarketData, _ cache: MarketDataCache, _ query: BarQuery? = nil) async throws -> (BarSet, CacheStatistics, CacheSession) {
        let session = await cache.openSession()
        let answer = try await data.dailyBars(query ?? self.query, session: session)
        return (answer, await session.finish(), session)
    }

    func expectComplete(_ answer: BarSet) throws {
        #expect(answer.bars["IBM"] == (try SharedBarsProvider.expected("IBM", query.range)))
        #expect(answer.bars["PG"] == (try SharedBarsProvider.expected("PG", query.range)))
    }

    /// Polls real requests until one uses Redis again (the breaker's backoff is <= 100 ms here).
    func waitUntilRedisIsUsed(_ data: CachedMarketData, _ cache: MarketDataCache) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            let (answer, _, session) = try await run(data, cache)
            try expectComplete(answer)
            if session.isUsingRedis { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("Redis was not used again within 10 s")
    }

    @Test func redisRestartedEmptyAfterPurgesKeepsCaching() async throws {
        let fixture = try CacheFixture("restart-after-purges", ownServer: true)
        let server = try #require(fixture.server)
        let source = SharedBarsProvider()
        let cache = fixture.makeCache(clock: ManualClock(unixSeconds: mondayNoon), localCacheBytes: 16 << 20)
        let data = CachedMarketData(upstream: source, cache: cache)
        try await run(data, cache)
        #expect(try await cache.purge().generation == 1)
        #expect(try await cache.purge().generation == 2)
        try await run(data, cache)
        #expect(try await run(data, cache).1.hits == 48)

        server.stop()
        try server.start()  // no persistence: an empty Redis on the same port
        try await waitUntilRedisIsUsed(data, cache)
        let calls = source.callCount
        let (answer, stats, session) = try await run(data, cache)
        try expectComplete(answer)
        #expect(stats.hits == 48 && stats.misses == 0, "caching resumed at once, in process memory and Redis")
        #expect(source.callCount == calls)
        #expect(session.isUsingRedis)
        #expect(session.generation > 2, "a fresh generation above every one seen before the restart")
        let raw = fixture.rawPool()
        #expect(try await fixture.keys(raw, pattern: fixture.prefix + dataKeys).count == 48, "Redis is written again")
        await raw.shutdown()

        // A later purge goes on from the fresh generation; caching goes on after it too.
        let purged = try await cache.purge()
        #expect(purged.generation == session.generation + 1)
        try await run(data, cache)
        #expect(try await run(data, cache).1.hits == 48)
        await cache.shutdown()
    }

    @Test func flushAllByAnotherClientAndAPurgeByAnotherServerAreSeenByAll() async throws {
        let fixture = try CacheFixture("flushall", ownServer: true)  // FLUSHALL: never on a shared server
        let clock = ManualClock(unixSeconds: mondayNoon)
        let sourceA = SharedBarsProvider()
        let sourceB = SharedBarsProvider()
        let cacheA = fixture.makeCache(clock: clock, localCacheBytes: 16 << 20)
        let cacheB = fixture.makeCache(clock: clock, localCacheBytes: 16 << 20)
        let dataA = CachedMarketData(upstream: sourceA, cache: cacheA)
        let dataB = CachedMarketData(upstream: sourceB, cache: cacheB)
        try await run(dataA, cacheA)
        _ = try await cacheA.purge()
        try await run(dataA, cacheA)
        let (_, statsB, sessionB) = try await run(dataB, cacheB)
        #expect(sessionB.generation == 1 && statsB.hits == 48 && sourceB.callCount == 0, "B reads what A wrote after A's purge")

        let raw = fixture.rawPool()
        _ = try await raw.execute(RedisCommand("FLUSHALL"))
        let (answerA, _, afterFlushA) = try await run(dataA, cacheA)
        try expectComplete(answerA)
        #expect(afterFlushA.isUsingRedis && afterFlushA.generation > 1)
        let (answerB, statsB2, afterFlushB) = try await run(dataB, cacheB)
        try expectComplete(answerB)
        #expect(afterFlushB.generation == afterFlushA.generation, "both servers moved to the same fresh generation")
        #expect(statsB2.hits == 48 && sourceB.callCount == 0)

        // A purge by B is seen by A at its next request.
        let purge = try await cacheB.purge()
        let (_, statsA, purgedA) = try await run(dataA, cacheA)
        #expect(purgedA.generation == purge.generation)
        #expect(statsA.hits == 0, "A's process memory from before B's purge is not served")
        await raw.shutdown()
        await cacheA.shutdown()
        await cacheB.shutdown()
    }

    @Test func redisDownFromStartUpStillUsesProcessMemory() async throws {
        let fixture = try CacheFixture("down-from-start", ownServer: true)
        let server = try #require(fixture.server)
        server.stop()
        let source = SharedBarsProvider()
        let cache = fixture.makeCache(clock: ManualClock(unixSeconds: mondayNoon), localCacheBytes: 16 << 20)
        let data = CachedMarketData(upstream: source, cache: cache)
        let (first, _, session) = try await run(data, cache)
        try expectComplete(first)
        #expect(!session.isUsingRedis && session.isCaching)
        let (second, stats, _) = try await run(data, cache)
        try expectComplete(second)
        #expect(stats.hits == 48 && source.callCount == 1, "the second run is answered from process memory")
        #expect(cache.figures().sessionsWithoutRedis == 2)
        await cache.shutdown()
    }

    @Test func aHungRedisCostsOneProbeAtATimeNeverARequest() async throws {
        let fixture = try CacheFixture("hung-light", ownServer: true)
        let server = try #require(fixture.server)
        let source = SharedBarsProvider()
        let cache = fixture.makeCache(clock: ManualClock(unixSeconds: mondayNoon))
        let data = CachedMarketData(upstream: source, cache: cache)
        let pool = try #require(cache.pool)
        try await run(data, cache)

        server.pause()
        defer { server.resume() }
        try expectComplete(try await run(data, cache).0)  // runs into the timeout: the breaker opens
        let admitted = pool.admittedCalls
        // Light traffic: every request comes after the backoff has expired (<= 100 ms here).
        for _ in 0..<5 {
            try await Task.sleep(for: .milliseconds(150))
            let (answer, _, session) = try await run(data, cache)
            try expectComplete(answer)
            #expect(!session.isUsingRedis)
        }
        #expect(pool.admittedCalls == admitted, "no request's command reached the hung Redis; only probes did")
        #expect(pool.probesStarted >= 1)
        server.resume()
        try await waitUntilRedisIsUsed(data, cache)
        await cache.shutdown()
    }

    @Test func aValueStoredUnderAnotherKeyIsAMissLoggedAndOverwritten() async throws {
        let fixture = try CacheFixture("swapped")
        let source = SharedBarsProvider()
        let query = BarQuery(symbols: ["MSFT", "SPY"], range: date("2020-01-02")...date("2020-12-31"), adjustment: .split)
        let cache = fixture.makeCache(clock: ManualClock(unixSeconds: mondayNoon))
        let data = CachedMarketData(upstream: source, cache: cache)
        try await run(data, cache, query)

        let june = CacheMonth(year: 2020, month: 6)
        let keys = CacheKeys(prefix: fixture.prefix)
        let spyKey = keys.bars(generation: 0, source: "shared-test", adjustment: .split, symbol: "SPY", month: june)
        let msftKey = keys.bars(generation: 0, source: "shared-test", adjustment: .split, symbol: "MSFT", month: june)
        let raw = fixture.rawPool()
        let spyValue = try #require(try await raw.execute(RedisCommand("GET", spyKey)).bytes)
        _ = try await raw.execute(RedisCommand([Array("SET".utf8), Array(msftKey.utf8), spyValue]))

        let (answer, stats, _) = try await run(data, cache, query)
        #expect(answer.bars["MSFT"] == (try SharedBarsProvider.expected("MSFT", query.range)), "SPY's bars are never served as MSFT's")
        #expect(stats.misses == 1)
        #expect(fixture.log.messages.contains { $0.contains("stored under another key") })
        #expect(cache.figures().rejectedValues == 1)
        let repaired = try #require(try await raw.execute(RedisCommand("GET", msftKey)).bytes)
        #expect(MonthOfBars.decode(repaired, symbol: "MSFT", month: june, key: msftKey)?.bars
            == (try SharedBarsProvider.expected("MSFT", june.firstDay...june.lastDay)))
        await raw.shutdown()
        await cache.shutdown()
    }

    // MARK: Files: directory and content identify the data

    /// A temporary data directory holding copies of shared files under chosen names.
    func directory(_ files: [String: String]) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("bt-files-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        for (name, original) in files {
            try FileManager.default.copyItem(
                at: SharedData.dailyDirectory.appendingPathComponent("\(original).csv"), to: url.appendingPathComponent("\(name).csv"))
        }
        return url
    }

    @Test func twoServersReadingDifferentDirectoriesThroughOneRedisNeverShareBars() async throws {
        let fixture = try CacheFixture("two-directories")
        let first = try directory(["XYZ": "SPY"])
        let second = try directory(["XYZ": "AAPL"])
        defer {
            try? FileManager.default.removeItem(at: first)
            try? FileManager.default.removeItem(at: second)
        }
        let query = BarQuery(symbols: ["XYZ"], range: date("2015-01-02")...date("2015-12-31"), adjustment: .split)
        let sourceA = try LocalFilesProvider(directory: first)
        let sourceB = try LocalFilesProvider(directory: second)
        let cacheA = fixture.makeCache(clock: ManualClock(unixSeconds: mondayNoon))
        let cacheB = fixture.makeCache(clock: ManualClock(unixSeconds: mondayNoon))
        let dataA = CachedMarketData(upstream: sourceA, cache: cacheA)
        let dataB = CachedMarketData(upstream: sourceB, cache: cacheB)
        try await run(dataA, cacheA, query)
        let (answerB, statsB, _) = try await run(dataB, cacheB, query)
        let (answerA, statsA, _) = try await run(dataA, cacheA, query)
        #expect(answerB.bars["XYZ"] == (try await sourceB.dailyBars(query)).bars["XYZ"])
        #expect(answerA.bars["XYZ"] == (try await sourceA.dailyBars(query)).bars["XYZ"])
        #expect(answerA.bars["XYZ"] != answerB.bars["XYZ"])
        #expect(statsB.hits == 0, "B never reads A's keys")
        #expect(statsA.hits == 12)
        await cacheA.shutdown()
        await cacheB.shutdown()
    }

    @Test func anEditedCSVIsNeverAnsweredFromTheCache() async throws {
        let fixture = try CacheFixture("edited-csv")
        let folder = try directory(["IBM": "IBM"])
        defer { try? FileManager.default.removeItem(at: folder) }
        let query = BarQuery(symbols: ["IBM"], range: date("2015-01-02")...date("2015-12-31"), adjustment: .split)
        let source = try LocalFilesProvider(directory: folder)
        let cache = fixture.makeCache(clock: ManualClock(unixSeconds: mondayNoon), localCacheBytes: 16 << 20)
        let data = CachedMarketData(upstream: source, cache: cache)
        let (before, _, _) = try await run(data, cache, query)
        #expect(try await run(data, cache, query).1.hits == 12)

        // One close of 2015-06-15 changed by an operator.
        let file = folder.appendingPathComponent("IBM.csv")
        var lines = try String(contentsOf: file, encoding: .utf8).components(separatedBy: "\n")
        let index = try #require(lines.firstIndex { $0.hasPrefix("2015-06-15,") })
        var fields = lines[index].components(separatedBy: ",")
        fields[4] = String(Double(fields[4])! + 1)
        lines[index] = fields.joined(separator: ",")
        try lines.joined(separator: "\n").write(to: file, atomically: true, encoding: .utf8)
        let day = try #require(before.bars["IBM"]?.dates.firstIndex(of: date("2015-06-15")))

        // The same process notices the edit...
        let (sameProcess, _, _) = try await run(data, cache, query)
        #expect(sameProcess.bars["IBM"]?.close[day] != before.bars["IBM"]?.close[day])
        #expect(sameProcess.bars["IBM"] == (try await LocalFilesProvider(directory: folder).dailyBars(query)).bars["IBM"])
        // ...and so does a restarted server on the same Redis.
        let restartedSource = try LocalFilesProvider(directory: folder)
        let restarted = fixture.makeCache(clock: ManualClock(unixSeconds: mondayNoon))
        let (answer, stats, _) = try await run(CachedMarketData(upstream: restartedSource, cache: restarted), restarted, query)
        #expect(answer.bars["IBM"] == (try await restartedSource.dailyBars(query)).bars["IBM"])
        #expect(stats.hits == 12, "the edited file's months were cached under its new fingerprint")
        await cache.shutdown()
        await restarted.shutdown()
    }

    @Test func alpacaKeysNameTheBaseURLAndFeed() {
        let sip = AlpacaProvider(configuration: AlpacaConfiguration(keyID: "k", secretKey: "s", baseURL: "http://127.0.0.1:1", feed: "sip"))
        let iex = AlpacaProvider(configuration: AlpacaConfiguration(keyID: "k", secretKey: "s", baseURL: "http://127.0.0.1:1", feed: "iex"))
        let other = AlpacaProvider(configuration: AlpacaConfiguration(keyID: "k", secretKey: "s", baseURL: "http://127.0.0.1:2", feed: "sip"))
        let tags = [sip, iex, other].map { CacheSession.sourceTag($0) }
        #expect(Set(tags).count == 3)
        #expect(tags.allSatisfy { $0.hasPrefix("alpaca-") })
        #expect(CacheSession.sourceTag(CoalescingProvider(sip)) == tags[0])
    }
}
