@testable import BacktestCache
import BacktestCore
import BacktestTestSupport
import Testing

@Suite("Packed values, keys and configuration")
struct CodecTests {
    let march = CacheMonth(year: 2021, month: 3)

    func marchBars() throws -> DailyBars {
        try SharedBarsProvider.expected("AAPL", date("2021-03-01")...date("2021-03-31"))
    }

    @Test func monthOfBarsRoundTripsExactly() throws {
        let bars = try marchBars()
        let chunk = MonthOfBars(month: march, completeThrough: date("2021-03-31"), bars: bars)
        let decoded = try #require(MonthOfBars.decode(chunk.encoded(key: "k"), symbol: "AAPL", month: march, key: "k"))
        #expect(decoded == chunk)
        #expect(decoded.bars.count == 23)
    }

    @Test func emptyMonthIsAFact() throws {
        let chunk = MonthOfBars(month: march, completeThrough: date("2021-03-31"), bars: DailyBars(symbol: "ABBV"))
        let decoded = try #require(MonthOfBars.decode(chunk.encoded(key: "k"), symbol: "ABBV", month: march, key: "k"))
        #expect(decoded.bars.isEmpty)
        #expect(decoded.completeThrough == date("2021-03-31"))
    }

    @Test func everyDamagedValueIsRejected() throws {
        let bytes = MonthOfBars(month: march, completeThrough: date("2021-03-31"), bars: try marchBars()).encoded(key: "k")
        var flipped = bytes
        flipped[bytes.count / 2] ^= 0x01
        var wrongVersion = bytes
        wrongVersion[4] = 0x7f
        var wrongMagic = bytes
        wrongMagic[0] = UInt8(ascii: "X")
        for damaged in [flipped, wrongVersion, wrongMagic, Array(bytes.dropLast(8)), Array("garbage".utf8), []] {
            #expect(MonthOfBars.decode(damaged, symbol: "AAPL", month: march, key: "k") == nil)
        }
        // A valid chunk of another month is not this month's.
        #expect(MonthOfBars.decode(bytes, symbol: "AAPL", month: CacheMonth(year: 2021, month: 4), key: "k") == nil)
    }

    @Test func seriesKeepNaNAndCheckTheirRange() throws {
        let values: [Double] = [.nan, .nan, 1.5, -2.25, 1e300]
        let bytes = PackedSeries.encode(values, from: date("2020-01-02"), through: date("2020-01-08"), key: "k")
        let decoded = try #require(PackedSeries.decode(bytes, from: date("2020-01-02"), through: date("2020-01-08"), key: "k"))
        #expect(decoded.count == 5)
        #expect(decoded[0].isNaN && decoded[1].isNaN)
        #expect(Array(decoded[2...]) == [1.5, -2.25, 1e300])
        #expect(PackedSeries.decode(bytes, from: date("2020-01-02"), through: date("2020-01-09"), key: "k") == nil)
    }

    @Test func keysCarryPrefixSchemaAndGeneration() {
        let keys = CacheKeys(prefix: "bt[1]")
        let key = keys.bars(generation: 42, source: "alpaca", adjustment: .split, symbol: "AAPL", month: march)
        #expect(key == "bt[1]:v\(CacheSchema.version):g42:bars:alpaca:split:AAPL:202103")
        #expect(keys.generation(ofKey: Array(key.utf8)) == 42)
        #expect(keys.generation(ofKey: Array("bt[1]:v\(CacheSchema.version):generation".utf8)) == nil)
        #expect(keys.generation(ofKey: Array("other:v\(CacheSchema.version):g42:bars".utf8)) == nil)
        #expect(keys.dataKeyPattern == "bt\\[1\\]:v\(CacheSchema.version):g*")
    }

    // The BACKTESTD_REDIS_* and BACKTESTD_CACHE_* variables are parsed by backtestd's
    // configuration reader (BacktestDaemonTests); the URL form is RedisConfiguration's.
    @Test func redisURLIsRead() throws {
        let url = try RedisConfiguration(url: "redis://:secret@cache.local:6380/2")
        #expect(url.host == "cache.local" && url.port == 6380 && url.password == "secret" && url.database == 2)
        let user = try RedisConfiguration(url: "redis://app:pw@10.0.0.5")
        #expect(user.username == "app" && user.password == "pw" && user.host == "10.0.0.5" && user.port == 6379)
        #expect(throws: CacheConfigurationError.self) { try RedisConfiguration(url: "http://x") }
        #expect(throws: CacheConfigurationError.self) { try RedisConfiguration(url: "redis://host:70000") }
        let error = #expect(throws: CacheConfigurationError.self) { try RedisConfiguration(url: "redis://:hunter2@host:x") }
        #expect(error?.message.contains("hunter2") == false, "the message does not repeat the password")
    }
}

@Suite("The T-2 rule")
struct HorizonTests {
    @Test func weekendIsSkipped() {
        // Monday 2021-04-12: T-1 is Friday 04-09, T-2 Thursday 04-08.
        #expect(CacheHorizon.lastCacheableDate(atUnixSeconds: mondayNoon) == date("2021-04-08"))
        #expect(CacheHorizon.shouldCache(date("2021-04-08"), atUnixSeconds: mondayNoon))
        #expect(!CacheHorizon.shouldCache(date("2021-04-09"), atUnixSeconds: mondayNoon))
    }

    @Test func holidayIsSkipped() {
        // Tuesday 2021-04-06: T-1 is Monday 04-05; Good Friday 04-02 is closed, so T-2 is 04-01.
        #expect(CacheHorizon.lastCacheableDate(atUnixSeconds: tuesdayAfterGoodFridayNoon) == date("2021-04-01"))
    }

    @Test func todayIsTheNewYorkDate() {
        // 2021-04-12 23:30 EDT is already 04-13 in UTC, but still Monday in New York.
        #expect(CacheHorizon.lastCacheableDate(atUnixSeconds: 1_618_284_600) == date("2021-04-08"))
        // 2021-04-13 00:30 EDT: Tuesday, T-2 = Friday 04-09.
        #expect(CacheHorizon.lastCacheableDate(atUnixSeconds: 1_618_288_200) == date("2021-04-09"))
    }
}

@Suite("A cache without Redis")
struct NoRedisTests {
    @Test func noRedisMeansNoCaching() async throws {
        let cache = MarketDataCache(redis: nil, options: CacheOptions(), clock: ManualClock(unixSeconds: mondayNoon))
        #expect(cache.pool == nil)
        let session = await cache.openSession()
        #expect(!session.isCaching)
        await session.finish()
    }
}
