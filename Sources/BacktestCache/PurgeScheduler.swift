import BacktestCore
import Logging

/// Purges the cache every day at 4:00 PM and 8:00 PM America/New_York (after the close, and
/// after the vendor's late corrections), in New York wall-clock time across DST changes.
///
/// The next instant is computed from the clock each time (`NewYorkTime.unixSeconds`), never by
/// adding 4 or 20 hours, so the schedule is right on the 23- and 25-hour days.
public struct PurgeScheduler: Sendable {
    /// New York wall-clock times of the purges, (hour, minute).
    public static let times: [(hour: Int, minute: Int)] = [(16, 0), (20, 0)]

    public let cache: MarketDataCache
    public let clock: any CacheClock
    let logger: Logger

    public init(cache: MarketDataCache, clock: (any CacheClock)? = nil, logger: Logger = Logger(label: "backtestd.cache.purge")) {
        self.cache = cache
        self.clock = clock ?? cache.clock
        self.logger = logger
    }

    /// The first scheduled purge strictly after `unixSeconds`, and its label ("4:00 PM ET").
    public static func nextPurge(after unixSeconds: Int64) -> (unixSeconds: Int64, label: String) {
        var date = NewYorkTime.date(unixSeconds: unixSeconds).advanced(by: -1)
        while true {
            for time in times {
                let instant = NewYorkTime.unixSeconds(date: date, hour: time.hour, minute: time.minute)
                if instant > unixSeconds { return (instant, label(hour: time.hour, minute: time.minute)) }
            }
            date = date.advanced(by: 1)
        }
    }

    static func label(hour: Int, minute: Int) -> String {
        let twelve = hour % 12 == 0 ? 12 : hour % 12
        return "\(twelve):\(minute < 10 ? "0" : "")\(minute) \(hour < 12 ? "AM" : "PM") ET"
    }

    /// Runs until the task is cancelled: sleeps to the next purge time, purges, logs. A failed
    /// purge (Redis down) is logged and the schedule continues.
    public func run() async {
        while !Task.isCancelled {
            let next = Self.nextPurge(after: clock.unixSeconds())
            do {
                try await clock.sleep(untilUnixSeconds: next.unixSeconds)
            } catch {
                return
            }
            await purgeNow(label: next.label)
        }
    }

    /// One purge with the log line; returns nil when Redis could not be reached.
    @discardableResult
    public func purgeNow(label: String) async -> PurgeResult? {
        do {
            let result = try await cache.purge()
            logger.notice("Cache purged at \(label) (\(result.removedEntries) entries)")
            return result
        } catch {
            logger.warning("Cache purge at \(label) failed: \(error); the next scheduled purge will retry")
            return nil
        }
    }
}
