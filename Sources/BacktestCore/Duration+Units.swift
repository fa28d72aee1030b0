/// The package's one conversion of `Duration` to plain numbers (run statistics, timeouts on the
/// wire and in C libraries, benchmark reports). Whole units truncate toward zero.
extension Duration {
    /// The duration in (fractional) milliseconds, as run statistics report it.
    public var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }

    /// The duration in (fractional) seconds.
    public var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) * 1e-18
    }

    /// Whole milliseconds (truncated), e.g. for a protocol's `timeout_ms` or libcurl's `_MS` options.
    public var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// Whole microseconds (truncated), e.g. for a `timeval` or a latency histogram.
    public var wholeMicroseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000 + attoseconds / 1_000_000_000_000
    }

    /// Whole nanoseconds (truncated), e.g. for NIO's `TimeAmount`.
    public var wholeNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
