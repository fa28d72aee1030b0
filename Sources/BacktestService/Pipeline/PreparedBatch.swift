import BacktestCore
import BacktestEngine
import BacktestModel

/// The shared phase of one backtest or of a whole batch, done once: the bars of every ticker any
/// variant reads (plus the benchmark), every unique indicator series, and the calendar aligned
/// once (`PreparedMarket`), ready for any number of simulations to read concurrently.
package struct PreparedBatch: Sendable {
    package let settings: BacktestSettings
    package let snapshot: MarketSnapshot
    package let indicators: IndicatorStore
    /// The calendar and every ticker aligned to it, built once per batch; its error (no bars for
    /// the benchmark in the range, ...) is every variant's answer.
    package let market: Result<PreparedMarket, BacktestError>
    /// Milliseconds spent building `market` (counted once, as simulation time of the batch).
    package let marketMs: Double
    /// Analysis, data and indicator timings, cache counts and API calls of the shared phase.
    package let stats: RunStatistics
    /// What the data layer had to say (e.g. a ticker listed after the start), for every result.
    package let warnings: [BacktestWarning]
}

/// A strategy that passed validation once (`BacktestPipeline.validate`): the only input the
/// shared phase and the simulations accept, so nothing after validation checks it again.
package struct ValidatedVariant: Sendable {
    /// Its position in the request (0 for a single backtest).
    package let index: Int
    package let strategy: Strategy
    /// Where it sits in the call, for error fields: `run_backtest.strategy`,
    /// `run_batch.variants[i]` (`CallPaths`).
    package let path: FieldPath
    /// Where the call's settings sit: `run_backtest.settings`, `run_batch.settings`.
    package let settingsPath: FieldPath
    /// The settings it was validated against.
    package let settings: BacktestSettings
    /// For a grid's analysis: the base positions `strategy`'s positions stand for (it holds only
    /// those an axis value changed that read something new); nil when it is whole.
    package var basePositions: [Int]? = nil

    /// `error`, whose field names a position of `strategy` under `path`, naming the base position
    /// it stands for instead (`basePositions`).
    package func placedInBase(_ error: BacktestError) -> BacktestError {
        guard let basePositions else { return error }
        for (k, p) in basePositions.enumerated() where k != p {
            let from = path.position(k).description
            guard error.field == from || error.field.hasPrefix(from + ".") || error.field.hasPrefix(from + "[") else { continue }
            var placed = error
            placed.field = path.position(p).description + error.field.dropFirst(from.count)
            return placed
        }
        return error
    }
}

/// A strategy that failed validation: its index in the request and its INVALID_ARGUMENT.
package struct Rejection: Error, Sendable {
    package let index: Int
    package let error: BacktestError
}

/// Told what the pipeline does, for tests that count the work: validations per variant, shared
/// phases (one `PreparedMarket` each) per call, cache sessions opened and finished. Called
/// synchronously from the pipeline's tasks; implementations must be thread-safe and quick.
package protocol PipelineObserver: Sendable {
    /// Strategy `variant` (its index in the request) passed validation.
    func validated(variant: Int)
    /// A shared phase built its `PreparedMarket` (or tried to: a failure counts too).
    func preparedMarket()
    /// A cache session was opened (`opened`) or finished (`!opened`).
    func cacheSession(opened: Bool)
}
