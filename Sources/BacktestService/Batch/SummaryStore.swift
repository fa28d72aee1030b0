import BacktestCore
import BacktestModel
import Synchronization

/// What a batch run and later reads need to re-create a variant: its settings and either the
/// listed variants or the resolved grid.
package struct BatchSource: Sendable {
    package let settings: BacktestSettings
    package let variants: [Strategy]
    /// Listed variants the wire decoder could not decode, with their errors.
    package let invalidVariants: [Int: BacktestError]
    package let grid: GridPlan?
    package let detail: ResultDetail

    package init(
        settings: BacktestSettings, variants: [Strategy], invalidVariants: [Int: BacktestError] = [:], grid: GridPlan?,
        detail: ResultDetail
    ) {
        self.settings = settings
        self.variants = variants
        self.invalidVariants = invalidVariants
        self.grid = grid
        self.detail = detail
    }

    package var count: Int { grid?.count ?? variants.count }

    /// Variant `index` (INVALID_ARGUMENT naming `field` when outside the batch).
    package func strategy(_ index: Int, field: String) throws(BacktestError) -> Strategy {
        guard index >= 0, index < count else {
            throw .invalidArgument("variant \(index) is outside the batch of \(count)", field: field)
        }
        if let grid { return try grid.strategy(index) }
        if let error = invalidVariants[index] { throw error }
        return variants[index]
    }
}

/// The SUMMARY results of one batch, compact (about `bytesPerSummary` each: metrics, final
/// equity, order count, the variant's own warnings), in the order they finished. Written from
/// the sweep's worker threads, read by the streamer and by GetBatchStatus: a lock, not an actor.
///
/// What every summary of the batch shares (benchmark metrics, initial capital, the shared
/// phase's warnings) is kept once, in `shared`.
package final class SummaryStore: Sendable {
    /// Estimated memory and wire size of one kept summary: the registry's byte bounds count
    /// summaries in these units.
    package static let bytesPerSummary = 256

    package struct Shared: Sendable {
        var benchmarkMetrics = Metrics()
        var initialCapital = 0.0
        var warnings: [BacktestWarning] = []
        var dataSource = ""
    }

    struct Entry: Sendable {
        var index: Int32
        var outcome: Result<Compact, BacktestError>
    }

    struct Compact: Sendable {
        var strategyName: String
        var metrics: Metrics
        var finalEquity: Double
        var orderCount: Int32
        var simulationMs: Float
        var warnings: [BacktestWarning]
    }

    private struct State {
        var entries: [Entry] = []
        var shared = Shared()
        /// Set when the job ended: later appends (a chunk still running after a cancel) are dropped.
        var sealed = false
    }

    private let state = Mutex(State())

    package init() {}

    package var count: Int { state.withLock { $0.entries.count } }
    package var isEmpty: Bool { count == 0 }

    /// Sets what every summary shares (before the first `append`).
    package func setShared(benchmarkMetrics: Metrics, initialCapital: Double, warnings: [BacktestWarning], dataSource: String) {
        state.withLock { $0.shared = Shared(benchmarkMetrics: benchmarkMetrics, initialCapital: initialCapital, warnings: warnings, dataSource: dataSource) }
    }

    /// Records variant `index`'s outcome; `summary.warnings` are the variant's own (the shared
    /// ones are added back on reading).
    package func append(_ index: Int, _ outcome: Result<BacktestSummary, BacktestError>) {
        let kept: Result<Compact, BacktestError>
        switch outcome {
        case .success(let s):
            kept = .success(Compact(
                strategyName: s.strategyName, metrics: s.metrics, finalEquity: s.finalEquity,
                orderCount: Int32(clamping: s.orderCount), simulationMs: Float(s.stats.simulationMs), warnings: s.warnings))
        case .failure(let error):
            kept = .failure(error)
        }
        let entry = Entry(index: Int32(clamping: index), outcome: kept)
        state.withLock { state in
            if !state.sealed { state.entries.append(entry) }
        }
    }

    /// Ends recording: outcomes appended afterwards are dropped, so a cancelled or failed job keeps
    /// exactly what finished before it ended.
    package func seal() {
        state.withLock { $0.sealed = true }
    }

    /// Results `from..<from+maxCount` in finishing order (fewer at the end).
    package func results(from: Int, maxCount: Int = .max, parameters: (Int) -> [GridParameter]) -> [VariantResult] {
        let (slice, shared) = state.withLock { (state: inout State) -> ([Entry], Shared) in
            let count = state.entries.count
            let end = maxCount >= count ? count : min(count, from + maxCount)
            if from >= end { return ([], state.shared) }
            return (Array(state.entries[from..<end]), state.shared)
        }
        return slice.map { Self.variant($0, shared: shared, parameters: parameters) }
    }

    /// The results at `positions` in finishing order (a position past the end is left out).
    package func results(at positions: [Int], parameters: (Int) -> [GridParameter]) -> [VariantResult] {
        let (picked, shared) = state.withLock { (state: inout State) -> ([Entry], Shared) in
            (positions.compactMap { state.entries.indices.contains($0) ? state.entries[$0] : nil }, state.shared)
        }
        return picked.map { Self.variant($0, shared: shared, parameters: parameters) }
    }

    /// Every result, in finishing order.
    package func results(parameters: (Int) -> [GridParameter]) -> [VariantResult] {
        results(from: 0, parameters: parameters)
    }

    /// Every summary by index (errors left out), for ranking.
    package func rankable() -> [(index: Int, summary: BacktestSummary)] {
        let (entries, shared) = state.withLock { ($0.entries, $0.shared) }
        return entries.compactMap { entry in
            guard case .success(let compact) = entry.outcome else { return nil }
            return (Int(entry.index), Self.summary(compact, shared: shared))
        }
    }

    static func summary(_ c: Compact, shared: Shared) -> BacktestSummary {
        var stats = RunStatistics()
        stats.simulationMs = Double(c.simulationMs)
        stats.dataSource = shared.dataSource
        stats.engine = "v2"
        return BacktestSummary(
            strategyName: c.strategyName, metrics: c.metrics, benchmarkMetrics: shared.benchmarkMetrics, finalEquity: c.finalEquity,
            initialCapital: shared.initialCapital, orderCount: Int(c.orderCount), warnings: shared.warnings + c.warnings, stats: stats)
    }

    static func variant(_ entry: Entry, shared: Shared, parameters: (Int) -> [GridParameter]) -> VariantResult {
        let index = Int(entry.index)
        switch entry.outcome {
        case .success(let compact):
            return VariantResult(index: index, detail: .summary(summary(compact, shared: shared)), parameters: parameters(index))
        case .failure(let error):
            return VariantResult(index: index, detail: .failure(error), parameters: parameters(index))
        }
    }
}
