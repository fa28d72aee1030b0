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

    /// What the source holds for the batch's life, in bytes: the grid's plan (`GridPlan.heldBytes`)
    /// or the listed variants' positions (kept to recompute FULL results).
    package var heldBytes: Int {
        grid?.heldBytes ?? GridPlan.heldBytes(positions: variants.reduce(0) { $0 + $1.positions.count }, copies: 1, document: false)
    }

    /// About how many positions variant `index` has: a listed variant's own, a grid's base's
    /// (an axis over the whole positions list aside), for sizing the chunks a sweep runs.
    package func positionCount(_ index: Int) -> Int {
        if let grid { return grid.grid.base.positions.count }
        return variants.indices.contains(index) ? variants[index].positions.count : 1
    }

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

/// The SUMMARY results of one batch, compact (`Entry`, 168 bytes: metrics, final equity, order
/// count, the variant's own warnings; `bytesPerSummary` with slack), in the order they finished. Written from the sweep's
/// worker threads, read by the streamer and by GetBatchStatus: a lock, not an actor.
///
/// What every summary of the batch shares (benchmark metrics, initial capital, the shared
/// phase's warnings) is kept once, in `shared`.
///
/// Memory: entries live in chunks of `chunkSize`, so the store grows without copying what it
/// holds (one array doubling held 1.5 times its entries during each copy), and readers take a
/// `View` (the chunks' references, no copy) and build `VariantResult`s only for what they answer:
/// a tester's 200,000-variant grid peaked ~240 MB above its summaries while GetBatchStatus and
/// ranking built every result at once.
package final class SummaryStore: Sendable {
    /// Memory of one kept summary, in bytes: the registry's byte bounds count the store in these
    /// units. `Entry` is 168 bytes; the rest is the last chunk's slack. Its name's text is the
    /// variant's strategy's, which the batch's source holds already (a grid's variants share the
    /// base's). So 1,000,000 summaries fit the default 192 MB batch budget. (Their encoded size
    /// is larger, about 425 bytes: `VariantResult.encodedSizeEstimate`.)
    package static let bytesPerSummary = 176
    /// Entries per chunk (688 KB of them).
    static let chunkSize = 4096

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

    /// The store as it was when taken: reads without the lock and without copying entries.
    package struct View: Sendable {
        fileprivate let chunks: [[Entry]]
        fileprivate let shared: Shared
        package let count: Int

        /// The result at finishing position `position` (`0..<count`).
        package func result(at position: Int, parameters: (Int) -> [GridParameter]) -> VariantResult {
            SummaryStore.variant(chunks[position / chunkSize][position % chunkSize], shared: shared, parameters: parameters)
        }

        /// Per variant index in `0..<total`, its finishing position, -1 for none: O(count).
        package func positions(total: Int) -> [Int32] {
            var table = [Int32](repeating: -1, count: total)
            var position: Int32 = 0
            for chunk in chunks {
                for entry in chunk {
                    if entry.index >= 0, Int(entry.index) < total { table[Int(entry.index)] = position }
                    position += 1
                }
            }
            return table
        }

        /// `value` of every successful summary with its variant index (errors left out), each
        /// summary built and dropped in turn.
        package func ranked(by value: (BacktestSummary) -> Double) -> [(index: Int, value: Double)] {
            var ranked: [(index: Int, value: Double)] = []
            ranked.reserveCapacity(count)
            for chunk in chunks {
                for entry in chunk {
                    guard case .success(let compact) = entry.outcome else { continue }
                    ranked.append((Int(entry.index), value(SummaryStore.summary(compact, shared: shared))))
                }
            }
            return ranked
        }
    }

    private struct State {
        var chunks: [[Entry]] = []
        var count = 0
        var shared = Shared()
        /// Set when the job ended: later appends (a chunk still running after a cancel) are dropped.
        var sealed = false
    }

    private let state = Mutex(State())

    package init() {}

    package var count: Int { state.withLock { $0.count } }
    package var isEmpty: Bool { count == 0 }

    /// The store now, for reading (see `View`).
    package func view() -> View {
        state.withLock { View(chunks: $0.chunks, shared: $0.shared, count: $0.count) }
    }

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
            guard !state.sealed else { return }
            if state.chunks.last.map({ $0.count == Self.chunkSize }) ?? true {
                state.chunks.append([])
            }
            // Appending to the last chunk copies it only while a `View` holds it (at most a chunk).
            state.chunks[state.chunks.count - 1].append(entry)
            state.count += 1
        }
    }

    /// Ends recording: outcomes appended afterwards are dropped, so a cancelled or failed job keeps
    /// exactly what finished before it ended.
    package func seal() {
        state.withLock { $0.sealed = true }
    }

    /// Results `from..<from+maxCount` in finishing order (fewer at the end).
    package func results(from: Int, maxCount: Int = .max, parameters: (Int) -> [GridParameter]) -> [VariantResult] {
        let view = view()
        let end = maxCount >= view.count ? view.count : min(view.count, from + maxCount)
        guard from < end else { return [] }
        return (from..<end).map { view.result(at: $0, parameters: parameters) }
    }

    /// The results at `positions` in finishing order (a position past the end is left out).
    package func results(at positions: [Int], parameters: (Int) -> [GridParameter]) -> [VariantResult] {
        let view = view()
        return positions.compactMap { $0 >= 0 && $0 < view.count ? view.result(at: $0, parameters: parameters) : nil }
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
