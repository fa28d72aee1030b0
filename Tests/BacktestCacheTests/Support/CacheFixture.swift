@testable import BacktestCache
import BacktestCore
import BacktestTestSupport
import Foundation
import Logging

/// One test's Redis (its own redis-server, or CI's when allowed) and helpers around it.
struct CacheFixture {
    /// Set when this fixture started the server (tests that stop Redis always do).
    let server: RedisServerProcess?
    let port: Int
    let prefix: String
    let log = LogCapture()

    /// - Parameter ownServer: true for tests that stop, pause or restart Redis.
    /// - Parameter fileID, function: the test creating the fixture, named in scripts/test.sh's
    ///   report should its redis-server outlive it.
    init(_ name: String, ownServer: Bool = false, dataDirectory: URL? = nil,
         fileID: String = #fileID, function: String = #function) throws {
        if !ownServer, dataDirectory == nil, let external = RedisServerProcess.externalPort {
            server = nil
            port = external
        } else {
            let started = try RedisServerProcess(dataDirectory: dataDirectory, fileID: fileID, function: function)
            server = started
            port = started.port
        }
        prefix = RedisServerProcess.uniquePrefix(name)
    }

    var redis: RedisConfiguration {
        RedisConfiguration(
            port: port, poolSize: 3, connectTimeout: .milliseconds(300), commandTimeout: .milliseconds(300),
            initialBackoff: .milliseconds(20), maximumBackoff: .milliseconds(100))
    }

    /// A cache client as a freshly started server process would have it.
    func makeCache(clock: any WallClock, localCacheBytes: Int = 0, purgeGrace: Duration = .seconds(30)) -> MarketDataCache {
        MarketDataCache(
            redis: redis,
            options: CacheOptions(keyPrefix: prefix, localCacheBytes: localCacheBytes, purgeGrace: purgeGrace),
            clock: clock, logger: log.logger("cache"))
    }

    /// A direct connection for inspecting and tampering with Redis.
    func rawPool() -> RedisPool { RedisPool(configuration: redis) }

    /// Every key under this test's prefix.
    func keys(_ pool: RedisPool, pattern: String? = nil) async throws -> [String] {
        var cursor = "0"
        var keys: [String] = []
        repeat {
            let reply = try await pool.execute(RedisCommand("SCAN", cursor, "MATCH", pattern ?? "\(prefix):*", "COUNT", "1000"))
            guard case .array(let parts) = reply, case .array(let found) = parts[1], let next = parts[0].bytes else {
                throw RedisServerError("bad SCAN reply \(reply)")
            }
            cursor = String(decoding: next, as: UTF8.self)
            keys += found.compactMap(\.bytes).map { String(decoding: $0, as: UTF8.self) }
        } while cursor != "0"
        return keys.sorted()
    }
}

/// Noon in New York on 2021-04-12, a Monday: T-0 = 04-12, T-1 = Fri 04-09, T-2 = Thu 04-08.
let mondayNoon: Int64 = 1_618_243_200
/// Noon in New York on 2021-04-06, the Tuesday after Good Friday (04-02) and Easter:
/// T-0 = 04-06, T-1 = Mon 04-05, T-2 = Thu 04-01.
let tuesdayAfterGoodFridayNoon: Int64 = 1_617_724_800
