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

/// How much of each variant's outcome a batch sends and keeps (`BatchRequest.detail`).
public enum ResultDetail: String, Sendable, Hashable, CaseIterable {
    /// FULL for batches of at most `ResultDetail.fullUpTo` variants, SUMMARY for larger ones.
    case `default`
    /// Metrics, final equity, order count, warnings and the variant's parameter values.
    case summary
    /// Curves and orders: the whole `BacktestResult`.
    case full

    /// The largest batch that gets FULL results by default (the original plan's batch of 8 is).
    public static let fullUpTo = 64

    /// `.default` resolved for a batch of `count` variants: `.full` or `.summary`.
    public func resolved(count: Int) -> ResultDetail {
        self == .default ? (count <= Self.fullUpTo ? .full : .summary) : self
    }
}

/// A variant's outcome at the detail its batch asked for.
public enum VariantOutcome: Sendable {
    case full(BacktestResult)
    case summary(BacktestSummary)
    case failure(BacktestError)
}

/// One axis value of a variant of a grid, as the grid wrote it: ("positions[0].entry.lhs", "sma:20").
public struct GridParameter: Sendable, Hashable {
    /// The axis's path into the strategy (the strategy file's JSON path syntax).
    public var path: String
    /// The value as given (JSON text, or a plain string such as `sma:20`).
    public var value: String

    public init(path: String, value: String) {
        self.path = path
        self.value = value
    }
}

public struct VariantResult: Sendable {
    /// Position of the variant in the batch request (or in the grid's expansion order).
    public var index: Int
    /// The result (FULL or SUMMARY) or the variant's own error.
    public var detail: VariantOutcome
    /// The variant's axis values when the batch is a grid, in axis order; empty otherwise.
    public var parameters: [GridParameter]

    public init(index: Int, outcome: Result<BacktestResult, BacktestError>, parameters: [GridParameter] = []) {
        self.index = index
        switch outcome {
        case .success(let result): detail = .full(result)
        case .failure(let error): detail = .failure(error)
        }
        self.parameters = parameters
    }

    public init(index: Int, detail: VariantOutcome, parameters: [GridParameter] = []) {
        self.index = index
        self.detail = detail
        self.parameters = parameters
    }

    /// The FULL result or the error. A SUMMARY reads as a result without dates, curves or
    /// orders (`equity` holds the final equity alone so `finalEquity` is right); use `summary`
    /// or `detail` for summaries.
    public var outcome: Result<BacktestResult, BacktestError> {
        switch detail {
        case .full(let result): .success(result)
        case .failure(let error): .failure(error)
        case .summary(let summary):
            .success(BacktestResult(
                strategyName: summary.strategyName, dates: [], equity: [summary.finalEquity], benchmark: [], orders: [],
                metrics: summary.metrics, benchmarkMetrics: summary.benchmarkMetrics, warnings: summary.warnings,
                stats: summary.stats, initialCapital: summary.initialCapital, benchmarkTicker: "",
                dataSource: summary.stats.dataSource))
        }
    }

    /// The summary of the outcome (of a FULL result too); nil for an error.
    public var summary: BacktestSummary? {
        switch detail {
        case .full(let result): BacktestSummary(result)
        case .summary(let summary): summary
        case .failure: nil
        }
    }

    /// The error, when the variant failed.
    public var error: BacktestError? {
        if case .failure(let error) = detail { return error }
        return nil
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
