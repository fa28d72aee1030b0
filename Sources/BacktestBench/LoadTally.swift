import BacktestCore
import Histogram

/// What one simulated user saw; merged into the report at the end (no shared state while
/// the load runs, so counting costs nothing and cannot race).
package struct LoadTally: Sendable {
    package var latency: [RequestKind: Histogram<UInt64>] = [:]
    package var completed = 0
    /// Errors the user gave up on (surfaced), by status code name.
    package var errors: [String: Int] = [:]
    /// UNAVAILABLE answers the user retried, by status code name.
    package var retried: [String: Int] = [:]
    /// Answers that differ from the baseline (lost or mixed up), with what differed.
    package var mismatches: [String] = []

    package init() {}

    package mutating func record(_ kind: RequestKind, _ duration: Duration) {
        var histogram = latency[kind] ?? LatencySummary.makeHistogram()
        histogram.record(duration)
        latency[kind] = histogram
        completed += 1
    }

    package mutating func merge(_ other: LoadTally) {
        for (kind, histogram) in other.latency {
            var mine = latency[kind] ?? LatencySummary.makeHistogram()
            mine.add(histogram)
            latency[kind] = mine
        }
        completed += other.completed
        errors.merge(other.errors, uniquingKeysWith: +)
        retried.merge(other.retried, uniquingKeysWith: +)
        mismatches += other.mismatches
    }

    package var allLatencies: Histogram<UInt64> {
        var all = LatencySummary.makeHistogram()
        for histogram in latency.values { all.add(histogram) }
        return all
    }

    /// A status code's name for the error tables ("UNAVAILABLE"), or the error's type.
    static func name(of error: any Error) -> String {
        (error as? BacktestError).map { "\($0.code)" } ?? "\(type(of: error))"
    }
}
