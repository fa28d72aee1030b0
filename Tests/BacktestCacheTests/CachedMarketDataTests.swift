@testable import BacktestCache
import BacktestCore
import BacktestTestSupport
import MarketData
import Testing

@Suite("Cached market data against a real redis-server")
struct CachedMarketDataTests {
    let range = date("2001-01-02")...date("2021-03-31")
    let symbols = ["AAPL", "MSFT", "KO"]

    func expectMatchesSource(_ set: BarSet, _ symbols: [String], _ range: ClosedRange<TradingDate>) throws {
        for symbol in symbols {
            let bars = try #require(set.bars[symbol])
            #expect(bars == (try SharedBarsProvider.expected(symbol, range)))
        }
    }

    @Test func secondIdenticalRunIsServedFromRedis() async throws {
        let fixture = try CacheFixture("warm")
        let clock = ManualClock(unixSeconds: mondayNoon)
        let source = SharedBarsProvider()
        let query = BarQuery(symbols: symbols, range: range, adjustment: .split)

        // Warm-up run: everything is a miss, one multi-symbol call.
        let first = MarketDataCache(redis: fixture.redis, options: .init(keyPrefix: fixture.prefix, localCacheBytes: 0), clock: clock)
        let cold = CachedMarketData(upstream: source, cache: first)
        let coldSession = await first.openSession()
        try expectMatchesSource(try await cold.dailyBars(query, session: coldSession), symbols, range)
        let coldStats = await coldSession.finish()
        #expect(source.callCount == 1)
        #expect(coldStats.hits == 0 && coldStats.misses == 3 * 243)
        #expect(coldStats.apiCalls == 1)
        await first.shutdown()

        // Same backtest on a new cache client (no process memory): Redis answers all of it.
        let second = MarketDataCache(redis: fixture.redis, options: .init(keyPrefix: fixture.prefix, localCacheBytes: 0), clock: clock)
        let warm = CachedMarketData(upstream: source, cache: second)
        let warmSession = await second.openSession()
        let answer = try await warm.dailyBars(query, session: warmSession)
        let warmStats = await warmSession.finish()
        try expectMatchesSource(answer, symbols, range)
        #expect(source.callCount == 1, "the warm run must not reach the source")
        #expect(answer.apiCalls == 0)
        #expect(warmStats.hits == 3 * 243 && warmStats.misses == 0 && warmStats.hitRate == 1)
        await second.shutdown()
    }

    @Test func processMemoryLayerAnswersWithoutRedisAndCountsHits() async throws {
        let fixture = try CacheFixture("local")
        let cache = fixture.makeCache(clock: ManualClock(unixSeconds: mondayNoon), localCacheBytes: 64 << 20)
        let source = SharedBarsProvider()
        let data = CachedMarketData(upstream: source, cache: cache)
        let query = BarQuery(symbols: symbols, range: range, adjustment: .all)
        for _ in 0..<2 {
            let session = await cache.openSession()
            _ = try await data.dailyBars(query, session: session)
            await session.finish()
        }
        // Delete the Redis copies: a third run must still hit, from process memory.
        let raw = fixture.rawPool()
        let keys = try await fixture.keys(raw, pattern: "\(fixture.prefix):v\(CacheSchema.version):g[0-9]*")
        #expect(keys.count == 3 * 243)
        _ = try await raw.execute(RedisCommand([Array("UNLINK".utf8)] + keys.map { Array($0.utf8) }))
        let session = await cache.openSession()
        let answer = try await data.dailyBars(query, session: session)
        let stats = await session.finish()
        #expect(source.callCount == 1)
        #expect(stats.hits == 3 * 243 && stats.misses == 0)
        #expect(answer.bars["KO"] == (try SharedBarsProvider.expected("KO", range, .all)))
        #expect(fixture.log.messages.contains("cache: 729 hits, 0 misses (100.0%) for AAPL,KO,MSFT"))
        await raw.shutdown()
        await cache.shutdown()
    }

    /// Runs `query` twice (cold, then warm) and returns the source's queries.
    func twoRuns(_ fixture: CacheFixture, at unixSeconds: Int64, _ query: BarQuery) async throws -> ([BarQuery], BarSet) {
        let source = SharedBarsProvider()
        let cache = fixture.makeCache(clock: ManualClock(unixSeconds: unixSeconds))
        let data = CachedMarketData(upstream: source, cache: cache)
        var last = BarSet()
        for _ in 0..<2 {
            let session = await cache.openSession()
            last = try await data.dailyBars(query, session: session)
            await session.finish()
        }
        await cache.shutdown()
        return (source.queries, last)
    }

    func storedChunk(_ fixture: CacheFixture, _ symbol: String, _ month: CacheMonth) async throws -> MonthOfBars {
        let raw = fixture.rawPool()
        defer { Task { await raw.shutdown() } }
        let key = CacheKeys(prefix: fixture.prefix).bars(generation: 0, source: "shared-test", adjustment: .split, symbol: Ticker(symbol)!.symbol, month: month)
        let bytes = try #require(try await raw.execute(RedisCommand("GET", key)).bytes)
        return try #require(MonthOfBars.decode(bytes, symbol: symbol, month: month, key: key))
    }

    @Test func afterAWeekendOnlyTMinus1AndTodayAreFetchedAgain() async throws {
        let fixture = try CacheFixture("weekend")
        let range = date("2021-03-01")...date("2021-04-12")
        let (queries, answer) = try await twoRuns(fixture, at: mondayNoon, BarQuery(symbols: ["AAPL"], range: range, adjustment: .split))
        #expect(queries.count == 2)
        #expect(queries.last?.range == date("2021-04-09")...date("2021-04-12"))
        #expect(answer.bars["AAPL"] == (try SharedBarsProvider.expected("AAPL", range)))
        let april = try await storedChunk(fixture, "AAPL", CacheMonth(year: 2021, month: 4))
        #expect(april.completeThrough == date("2021-04-08"))
        #expect(april.bars.lastDate == date("2021-04-08"))
    }

    @Test func afterAHolidayTheBoundarySkipsTheClosedDay() async throws {
        let fixture = try CacheFixture("holiday")
        let range = date("2021-03-15")...date("2021-04-06")
        let (queries, answer) = try await twoRuns(
            fixture, at: tuesdayAfterGoodFridayNoon, BarQuery(symbols: ["MSFT"], range: range, adjustment: .split))
        #expect(queries.last?.range == date("2021-04-02")...date("2021-04-06"))
        #expect(answer.bars["MSFT"] == (try SharedBarsProvider.expected("MSFT", range)))
        let april = try await storedChunk(fixture, "MSFT", CacheMonth(year: 2021, month: 4))
        #expect(april.completeThrough == date("2021-04-01"))
        #expect(april.bars.dates == [date("2021-04-01")])
    }

    @Test func daysBeforeAListingAreCachedAsNoData() async throws {
        let fixture = try CacheFixture("ipo")
        // ABBV starts trading in 2013: 2010-2012 has no bars, and that fact is cached too.
        let range = date("2010-01-04")...date("2014-12-31")
        let (queries, answer) = try await twoRuns(fixture, at: mondayNoon, BarQuery(symbols: ["ABBV"], range: range, adjustment: .split))
        #expect(queries.count == 1)
        let bars = try #require(answer.bars["ABBV"])
        #expect(bars == (try SharedBarsProvider.expected("ABBV", range)))
        #expect(bars.firstDate.map { $0 >= date("2012-12-01") } == true)
        // The second (fully warm) answer still says the range starts before the listing.
        #expect(answer.warnings.map(\.message) == ["ABBV: no data before \(bars.firstDate!); using \(bars.firstDate!)...\(bars.lastDate!)"])
        #expect(answer.warnings.map(\.kind) == [.noDataBefore])
        let (unknown, empty) = try await twoRuns(fixture, at: mondayNoon, BarQuery(symbols: ["ZZZZ"], range: range, adjustment: .split))
        #expect(unknown.count == 1)
        #expect(empty.missing == ["ZZZZ"])
    }

    @Test func aWarmAnswerKeepsTheSourcesStandingWarning() async throws {
        let fixture = try CacheFixture("demo-warning")
        let demo = DemoProvider(endDate: { date("2021-04-09") })
        let cache = fixture.makeCache(clock: ManualClock(unixSeconds: mondayNoon))
        let data = CachedMarketData(upstream: demo, cache: cache)
        let query = BarQuery(symbols: ["AAPL"], range: date("2020-01-02")...date("2020-12-31"), adjustment: .split)
        var answers: [(BarSet, CacheStatistics)] = []
        for _ in 0..<2 {
            let session = await cache.openSession()
            answers.append((try await data.dailyBars(query, session: session), await session.finish()))
        }
        #expect(answers[1].1.misses == 0, "the second answer is all from the cache")
        #expect(answers[0].0.warnings == [BacktestWarning(.demoData, message: demo.label)])
        #expect(answers[1].0.warnings == [BacktestWarning(.demoData, message: demo.label)])
        await cache.shutdown()
    }

    @Test func sourceErrorsAreNeverCached() async throws {
        let fixture = try CacheFixture("errors")
        let source = SharedBarsProvider()
        let cache = fixture.makeCache(clock: ManualClock(unixSeconds: mondayNoon))
        let data = CachedMarketData(upstream: source, cache: cache)
        for _ in 0..<2 {
            await #expect(throws: BacktestError.self) {
                try await data.dailyBars(BarQuery(symbols: ["BAD$"], range: range, adjustment: .split))
            }
        }
        #expect(source.callCount == 2)
        let raw = fixture.rawPool()
        #expect(try await fixture.keys(raw, pattern: "\(fixture.prefix):v\(CacheSchema.version):g[0-9]*").isEmpty)
        await raw.shutdown()
        await cache.shutdown()
    }

    @Test func corruptedValueIsAMissRefetchedAndOverwritten() async throws {
        let fixture = try CacheFixture("corrupt")
        let clock = ManualClock(unixSeconds: mondayNoon)
        let source = SharedBarsProvider()
        let query = BarQuery(symbols: ["AAPL"], range: date("2020-01-02")...date("2020-12-31"), adjustment: .split)
        let cache = fixture.makeCache(clock: clock)
        let data = CachedMarketData(upstream: source, cache: cache)
        let warmup = await cache.openSession()
        _ = try await data.dailyBars(query, session: warmup)
        await warmup.finish()

        let june = CacheMonth(year: 2020, month: 6)
        let key = CacheKeys(prefix: fixture.prefix).bars(generation: 0, source: "shared-test", adjustment: .split, symbol: "AAPL", month: june)
        let raw = fixture.rawPool()
        var damaged = try #require(try await raw.execute(RedisCommand("GET", key)).bytes)
        damaged[damaged.count - 3] ^= 0xff  // one flipped byte in a close price
        _ = try await raw.execute(RedisCommand([Array("SET".utf8), Array(key.utf8), damaged]))

        let session = await cache.openSession()
        let answer = try await data.dailyBars(query, session: session)
        let stats = await session.finish()
        #expect(answer.bars["AAPL"] == (try SharedBarsProvider.expected("AAPL", query.range)), "the damaged month is never served")
        #expect(stats.misses >= 1 && stats.hits >= 5)
        #expect(source.queries.last?.range.lowerBound == june.firstDay)
        #expect(fixture.log.messages.contains { $0.contains("corrupt") })
        let repaired = try #require(try await raw.execute(RedisCommand("GET", key)).bytes)
        #expect(MonthOfBars.decode(repaired, symbol: "AAPL", month: june, key: key)?.bars == (try SharedBarsProvider.expected("AAPL", june.firstDay...june.lastDay)))
        await raw.shutdown()
        await cache.shutdown()
    }

    @Test func threeConcurrentUsersShareOneFetch() async throws {
        let fixture = try CacheFixture("concurrent")
        let source = SharedBarsProvider()
        let cache = fixture.makeCache(clock: ManualClock(unixSeconds: mondayNoon), localCacheBytes: 32 << 20)
        let data = CachedMarketData(upstream: source, cache: cache)
        let query = BarQuery(symbols: ["SPY", "AAPL", "JPM"], range: date("2005-01-03")...date("2019-12-31"), adjustment: .split)
        func user() async throws -> (BarSet, CacheStatistics) {
            let session = await cache.openSession()
            let answer = try await data.dailyBars(query, session: session)
            return (answer, await session.finish())
        }
        async let a = user()
        async let b = user()
        async let c = user()
        let answers = try await [a, b, c]
        #expect(source.callCount == 1, "identical missing ranges are fetched once")
        #expect(answers.map(\.1.apiCalls).reduce(0, +) == 1)
        for (answer, _) in answers { try expectMatchesSource(answer, query.symbols, query.range) }
        // Every stored value decodes to exactly the source's bars of its month.
        let raw = fixture.rawPool()
        let keys = try await fixture.keys(raw, pattern: "\(fixture.prefix):v\(CacheSchema.version):g[0-9]*")
        #expect(keys.count == 3 * 180)
        for key in keys {
            let parts = key.split(separator: ":")
            let symbol = String(parts[parts.count - 2])
            let number = Int(parts[parts.count - 1])!
            let month = CacheMonth(year: number / 100, month: number % 100)
            let bytes = try #require(try await raw.execute(RedisCommand("GET", key)).bytes)
            let chunk = try #require(MonthOfBars.decode(bytes, symbol: symbol, month: month, key: key))
            #expect(chunk.bars == (try SharedBarsProvider.expected(symbol, month.firstDay...month.lastDay)))
        }
        await raw.shutdown()
        await cache.shutdown()
    }
}
