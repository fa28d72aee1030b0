import BacktestClient
import BacktestCore
import BacktestModel
import Foundation

/// Timed calls over TCP, as a client sees them (request written to answer decoded).
package struct Probe: Sendable {
    package let client: BacktestClient

    package init(client: BacktestClient) {
        self.client = client
    }

    package struct SingleRun: Sendable {
        package var elapsed: Duration
        package var result: BacktestResult
    }

    package struct BatchRun: Sendable {
        /// Until the update with state Final arrived.
        package var elapsed: Duration
        package var results: [VariantResult]
        package var stats: RunStatistics?
    }

    package func single(_ strategy: Strategy, _ settings: BacktestSettings) async throws -> SingleRun {
        let started = ContinuousClock.now
        let result = try await client.runBacktest(strategy, settings: settings, timeout: .seconds(300))
        return SingleRun(elapsed: ContinuousClock.now - started, result: result)
    }

    package func batch(_ variants: [Strategy], _ settings: BacktestSettings) async throws -> BatchRun {
        let started = ContinuousClock.now
        var results: [VariantResult] = []
        var finished: Duration?
        var stats: RunStatistics?
        for try await update in client.runBatch(variants, settings: settings, timeout: .seconds(600)) {
            results += update.results
            if update.state == .final {
                finished = ContinuousClock.now - started
                stats = update.stats
            } else if update.state != .partial {
                throw update.error ?? BacktestError(.aborted, "batch ended \(update.statusText)")
            }
        }
        guard let finished else { throw BacktestError(.internal, "the batch stream ended without a Final update") }
        return BatchRun(elapsed: finished, results: results, stats: stats)
    }

    /// The answer of `request`, as `ExpectedOutcome` for comparison.
    package func outcome(of request: BenchRequest) async throws -> (Duration, ExpectedOutcome) {
        switch request {
        case .single(let strategy, let settings):
            let run = try await single(strategy, settings)
            return (run.elapsed, .single(ResultFingerprint(run.result)))
        case .batch(let variants, let settings):
            let run = try await batch(variants, settings)
            return (run.elapsed, try ExpectedOutcome.batch(run.results, total: variants.count))
        }
    }

    /// Median of `runs` timings of `body`.
    package static func median(_ runs: Int, _ body: () async throws -> Duration) async throws -> Double {
        var values: [Double] = []
        for _ in 0..<max(1, runs) { values.append(try await body().milliseconds) }
        return median(values)
    }

    package static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return .nan }
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }
}

/// Population variance of the daily returns of a curve (0 for a flat or too short curve).
package func dailyReturnVariance(_ curve: [Double]) -> Double {
    guard curve.count > 2 else { return 0 }
    var returns: [Double] = []
    for i in 1..<curve.count where curve[i - 1] != 0 { returns.append(curve[i] / curve[i - 1] - 1) }
    guard !returns.isEmpty else { return 0 }
    let mean = returns.reduce(0, +) / Double(returns.count)
    return returns.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(returns.count)
}
