#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A point in wall-clock time: the time since 1970-01-01 00:00:00 UTC (leap seconds ignored,
/// as Unix time does).
package struct UnixInstant: InstantProtocol, Sendable, CustomStringConvertible {
    /// Time since the Unix epoch.
    package var sinceEpoch: Duration

    package init(sinceEpoch: Duration) { self.sinceEpoch = sinceEpoch }

    package init(unixSeconds: Int64) { sinceEpoch = .seconds(unixSeconds) }

    /// Whole seconds since the epoch (rounded down).
    package var unixSeconds: Int64 {
        let (seconds, attoseconds) = sinceEpoch.components
        return attoseconds < 0 ? seconds - 1 : seconds
    }

    /// Fractional seconds since the epoch (e.g. to compare with an HTTP header's Unix time).
    package var unixTime: Double { sinceEpoch.seconds }

    package func advanced(by duration: Duration) -> UnixInstant { UnixInstant(sinceEpoch: sinceEpoch + duration) }
    package func duration(to other: UnixInstant) -> Duration { other.sinceEpoch - sinceEpoch }
    package static func < (lhs: UnixInstant, rhs: UnixInstant) -> Bool { lhs.sinceEpoch < rhs.sinceEpoch }
    package var description: String { "unix \(unixTime)" }
}

/// The package's one clock abstraction is Swift's `Clock`: code that measures or waits takes a
/// `Clock<Duration>` (`ContinuousClock` in production), and code that needs the calendar time
/// (the cache's T-2 rule and purge schedule, Alpaca's rate-limit reset) takes a `WallClock`,
/// a `Clock` whose instants are Unix times. Tests pass BacktestTestSupport's `ManualClock`,
/// which is both.
package protocol WallClock: Clock, Sendable where Instant == UnixInstant {}

/// The machine's real-time clock (`CLOCK_REALTIME`).
package struct SystemWallClock: WallClock {
    package init() {}

    package var now: UnixInstant {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return UnixInstant(sinceEpoch: .seconds(Int64(spec.tv_sec)) + .nanoseconds(Int64(spec.tv_nsec)))
    }

    package var minimumResolution: Duration { .nanoseconds(1) }

    /// Sleeps in slices of at most a minute, so a suspended machine or a clock change is noticed.
    /// Throws `CancellationError` when the task is cancelled.
    package func sleep(until deadline: UnixInstant, tolerance: Duration? = nil) async throws {
        while true {
            let remaining = now.duration(to: deadline)
            if remaining <= .zero { return }
            try await Task.sleep(for: min(remaining, .seconds(60)), tolerance: tolerance)
        }
    }
}
