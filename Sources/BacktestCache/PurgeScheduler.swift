import BacktestCore
import Logging

/// Purges the cache every day at 4:00 PM and 8:00 PM America/New_York (after the close, and
/// after the vendor's late corrections), in New York wall-clock time across DST changes.
///
/// The next instant is computed from the clock each time (`NewYorkTime.unixSeconds`), never by
/// adding 4 or 20 hours, so the schedule is right on the 23- and 25-hour days.
package struct PurgeScheduler: Sendable {
    /// New York wall-clock times of the purges, (hour, minute).
    package static let times: [(hour: Int, minute: Int)] = [(16, 0), (20, 0)]

    package let cache: MarketDataCache
    package let clock: any WallClock
    let logger: Logger

    package init(cache: MarketDataCache, clock: (any WallClock)? = nil, logger: Logger = Logger(label: "backtestd.cache.purge")) {
        self.cache = cache
        self.clock = clock ?? cache.clock
        self.logger = logger
    }

    /// The first scheduled purge strictly after `unixSeconds`, and its label ("4:00 PM ET").
    package static func nextPurge(after unixSeconds: Int64) -> (unixSeconds: Int64, label: String) {
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

    /// How long after a failed purge (Redis down) the scheduler tries again.
    package static let retryIntervalSeconds: Int64 = 60

    /// Runs until the task is cancelled: sleeps to the next purge time, purges, logs.
    ///
    /// A purge that fails (Redis down) is retried every `retryIntervalSeconds` until it succeeds
    /// or the next scheduled purge is due: the purge exists so that vendor corrections replace
    /// cached bars, and waiting four to twenty hours for the next slot would serve stale bars
    /// for that long once Redis is back.
    package func run() async {
        var missed: String?
        while !Task.isCancelled {
            let now = clock.now.unixSeconds
            let scheduled = Self.nextPurge(after: now)
            // A retry when one is owed and comes before the next scheduled purge.
            let retry = missed.flatMap { now + Self.retryIntervalSeconds < scheduled.unixSeconds ? $0 : nil }
            do {
                try await clock.sleep(
                    until: UnixInstant(unixSeconds: retry == nil ? scheduled.unixSeconds : now + Self.retryIntervalSeconds),
                    tolerance: nil)
            } catch {
                return
            }
            let label = retry ?? scheduled.label
            missed = await purgeNow(label: label, retry: retry != nil) == nil ? label : nil
        }
    }

    /// One purge with the log line; returns nil when Redis could not be reached.
    @discardableResult
    package func purgeNow(label: String, retry: Bool = false) async -> PurgeResult? {
        do {
            let result = try await cache.purge(reason: label)
            logger.notice("Cache purged at \(label)\(retry ? " (retried)" : "") (\(result.removedEntries) entries)")
            return result
        } catch {
            logger.warning("Cache purge at \(label) failed: \(error); retrying every \(Self.retryIntervalSeconds) s until the next scheduled purge")
            return nil
        }
    }
}
