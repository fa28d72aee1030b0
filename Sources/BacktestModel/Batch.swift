import BacktestCore

// Batch progress: the Swift twin of ProgressUpdate and VariantResult in proto/backtest.proto.

public enum BatchState: String, Sendable, Hashable {
    /// Some variants still running.
    case partial
    /// Every variant finished, each with a result or its own error.
    case final
    /// Stopped by cancel, deadline or disconnect.
    case cancelled
    /// The shared phase (analysis, data, indicators) failed.
    case failed
}

public struct VariantResult: Sendable {
    /// Position of the variant in the batch request.
    public var index: Int
    public var outcome: Result<BacktestResult, BacktestError>

    public init(index: Int, outcome: Result<BacktestResult, BacktestError>) {
        self.index = index
        self.outcome = outcome
    }
}

public struct ProgressUpdate: Sendable {
    public var batchID: String
    public var completed: Int
    public var total: Int
    public var state: BatchState
    /// Streamed updates: the variants that finished since the previous update.
    /// Status answers: every variant finished so far.
    public var results: [VariantResult]
    /// On the final update: the whole batch.
    public var stats: RunStatistics?
    public var error: BacktestError?

    public init(
        batchID: String, completed: Int, total: Int, state: BatchState, results: [VariantResult] = [],
        stats: RunStatistics? = nil, error: BacktestError? = nil
    ) {
        self.batchID = batchID
        self.completed = completed
        self.total = total
        self.state = state
        self.results = results
        self.stats = stats
        self.error = error
    }

    /// "Partial (3/8 complete)", "Final", "Cancelled", "Failed".
    public var statusText: String {
        switch state {
        case .partial: "Partial (\(completed)/\(total) complete)"
        case .final: "Final"
        case .cancelled: "Cancelled (\(completed)/\(total) complete)"
        case .failed: "Failed"
        }
    }
}
