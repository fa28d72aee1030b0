import BacktestCore
import Histogram

/// Latency percentiles of one set of requests, read from an HDR histogram of microseconds
/// (3 significant digits, so every figure is within 0.1 % of the recorded value).
package struct LatencySummary: Sendable, Hashable, Codable {
    package var count: UInt64
    package var p50Ms: Double
    package var p90Ms: Double
    package var p99Ms: Double
    package var maxMs: Double
    package var meanMs: Double

    package init(_ histogram: Histogram<UInt64>) {
        count = histogram.totalCount
        guard count > 0 else {
            p50Ms = 0; p90Ms = 0; p99Ms = 0; maxMs = 0; meanMs = 0
            return
        }
        p50Ms = Double(histogram.valueAtPercentile(50)) / 1000
        p90Ms = Double(histogram.valueAtPercentile(90)) / 1000
        p99Ms = Double(histogram.valueAtPercentile(99)) / 1000
        maxMs = Double(histogram.max) / 1000
        meanMs = histogram.mean / 1000
    }

    /// A histogram for latencies from 1 µs to 10 minutes.
    package static func makeHistogram() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
    }
}

extension Histogram where Count == UInt64 {
    /// Records a duration in microseconds (clamped to the histogram's range).
    package mutating func record(_ duration: Duration) {
        let micros = Swift.max(1, duration.wholeMicroseconds)
        _ = record(Swift.min(UInt64(micros), highestTrackableValue))
    }
}
