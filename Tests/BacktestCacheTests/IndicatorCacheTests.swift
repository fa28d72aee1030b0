@testable import BacktestCache
import BacktestCore
import BacktestTestSupport
import Foundation
import Testing

@Suite("Indicator cache")
struct IndicatorCacheTests {
    let epoch = date("1999-11-01")

    func key(through: TradingDate, indicator: String = "sma:50") -> IndicatorCacheKey {
        IndicatorCacheKey(ticker: Ticker("SPY")!, indicator: indicator, adjustment: .split, source: "files", from: epoch, through: through)
    }

    /// SMA(50) of SPY's closes, NaN during the warm-up, computed here as the value to cache.
    static func sma50() throws -> [Double] {
        sma50(try SharedBarsProvider.expected("SPY", date("1999-11-01")...date("2020-08-28")).close)
    }

    static func sma50(_ close: [Double]) -> [Double] {
        var values = [Double](repeating: .nan, count: close.count)
        var sum = 0.0
        for i in close.indices {
            sum += close[i]
            if i >= 50 { sum -= close[i - 50] }
            if i >= 49 { values[i] = sum / 50 }
        }
        return values
    }

    @Test func seriesRoundTripsThroughRedisBitForBit() async throws {
        let fixture = try CacheFixture("indicators")
        let values = try Self.sma50()
        let writer = fixture.makeCache(clock: ManualClock(unixSeconds: mondayNoon))
        let session = await writer.openSession()
        #expect(await IndicatorCache(cache: writer).put(key(through: date("2020-08-28")), values: values, session: session))
        await session.finish()
        await writer.shutdown()

        let reader = fixture.makeCache(clock: ManualClock(unixSeconds: mondayNoon))
        let indicators = IndicatorCache(cache: reader)
        let readSession = await reader.openSession()
        let cached = try #require(await indicators.get(key(through: date("2020-08-28")), expectedCount: values.count, session: readSession))
        #expect(cached.map(\.bitPattern) == values.map(\.bitPattern))
        #expect(await indicators.get(key(through: date("2020-08-28")), expectedCount: values.count + 1, session: readSession) == nil)
        #expect(await indicators.get(key(through: date("2020-08-27")), session: readSession) == nil, "another range is another key")
        #expect(await indicators.get(key(through: date("2020-08-28"), indicator: "sma:20"), session: readSession) == nil)
        let stats = await readSession.finish()
        #expect(stats.hits == 1 && stats.misses == 3)
        await reader.shutdown()
    }

    @Test func seriesEndingAfterTMinus2AreNotStored() async throws {
        let fixture = try CacheFixture("indicators-t2")
        let cache = fixture.makeCache(clock: ManualClock(unixSeconds: mondayNoon), localCacheBytes: 1 << 20)
        let indicators = IndicatorCache(cache: cache)
        let session = await cache.openSession()
        #expect(await indicators.put(key(through: date("2021-04-09")), values: [1, 2], session: session) == false)
        #expect(await indicators.put(key(through: date("2021-04-08")), values: [1, 2], session: session))
        #expect(await indicators.get(key(through: date("2021-04-09")), session: session) == nil)
        await session.finish()
        let raw = fixture.rawPool()
        let keys = try await fixture.keys(raw, pattern: "\(fixture.prefix):v\(CacheSchema.version):g[0-9]*")
        #expect(keys == ["\(fixture.prefix):v\(CacheSchema.version):g0:ind:files:split:SPY:sma:50:1999-11-01:2021-04-08"])
        await raw.shutdown()
        await cache.shutdown()
    }

    @Test func corruptSeriesIsAMiss() async throws {
        let fixture = try CacheFixture("indicators-corrupt")
        let cache = fixture.makeCache(clock: ManualClock(unixSeconds: mondayNoon))
        let indicators = IndicatorCache(cache: cache)
        let redisKey = CacheKeys(prefix: fixture.prefix).indicator(generation: 0, key: key(through: date("2020-08-28")))
        let raw = fixture.rawPool()
        var bytes = PackedSeries.encode([1, 2, 3], from: epoch, through: date("2020-08-28"), key: redisKey)
        bytes[bytes.count - 1] ^= 0x40
        _ = try await raw.execute(RedisCommand([Array("SET".utf8), Array(redisKey.utf8), bytes]))
        let session = await cache.openSession()
        #expect(await indicators.get(key(through: date("2020-08-28")), session: session) == nil)
        #expect(await indicators.put(key(through: date("2020-08-28")), values: [1, 2, 3], session: session))
        #expect(await indicators.get(key(through: date("2020-08-28")), session: session) == [1, 2, 3])
        await session.finish()
        await raw.shutdown()
        await cache.shutdown()
    }
}
