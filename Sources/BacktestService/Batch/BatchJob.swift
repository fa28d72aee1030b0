import BacktestCore
import BacktestModel
import NIOCore

/// The server-side state of one batch: what finished so far, so a client that lost its stream
/// can re-attach with GetBatchStatus and see the same results the stream carried.
///
/// An actor because variant tasks record results concurrently while status requests read.
package actor BatchJob {
    /// 128 random bits, hex: the only key to the job (whoever holds it may read the results).
    package nonisolated let id: String
    package nonisolated let total: Int
    package private(set) var state: BatchState = .partial
    /// When the job reached a terminal state, in the registry's clock; nil while running.
    package private(set) var finishedAt: ContinuousClock.Instant?
    /// When a GetBatchStatus last read the job: a client re-attached to it.
    package private(set) var lastReadAt: NIODeadline?
    /// The most variants simulated at once so far: the batch's parallelism bound made visible
    /// (tests check it, operators can log it).
    package private(set) var peakParallelism = 0
    private var results: [VariantResult] = []
    private var stats: RunStatistics?
    private var error: BacktestError?
    /// Why a CancelBatch stopped the job; nil unless one did.
    package private(set) var cancelReason: BacktestError?
    /// Stops the job's work; set by whoever runs it, called once by `cancel()`.
    private var stopWork: (@Sendable () -> Void)?
    /// Tells the registry the job finished and how many bytes of results it keeps.
    /// Returns true when the finished jobs are now over the registry's byte bound: the job then
    /// keeps summaries instead of FULL results and reports its new size through `onResize`.
    private let onFinish: @Sendable (Int) -> Bool
    private let onResize: @Sendable (Int) -> Void
    /// What the batch ran (settings and variants or grid), so a FULL result can be recomputed
    /// on demand (GetVariantResults); nil for jobs made without it (tests).
    package nonisolated let source: BatchSource?
    /// SUMMARY results, recorded from the sweep's threads without an actor hop.
    package nonisolated let summaries = SummaryStore()
    /// The bytes of results (`estimatedBytes`) the job may keep while it runs: what the registry
    /// admitted it for, grown through `grow` (which says whether the budget had the extra
    /// bytes). A FULL result that fits neither is streamed whole but kept as its summary
    /// (GetVariantResults recomputes it); nil keeps every one (jobs made without a reservation).
    private var reserved: Int?
    private let grow: @Sendable (Int) -> Bool
    /// `estimatedBytes` of `results`, kept up to date as they change.
    private var resultsBytes = 0

    init(id: String, total: Int, source: BatchSource? = nil, reserved: Int? = nil, grow: @escaping @Sendable (Int) -> Bool = { _ in false },
         onFinish: @escaping @Sendable (Int) -> Bool = { _ in false }, onResize: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.id = id
        self.total = total
        self.source = source
        self.reserved = reserved
        self.grow = grow
        self.onFinish = onFinish
        self.onResize = onResize
    }

    package var completed: Int { results.count + summaries.count }

    /// Records a finished variant and returns the streamed update announcing it (with the whole
    /// result); the job keeps it whole while its results fit its reservation, grown from the
    /// budget when there is room, else its summary (a tester's FULL batches were admitted for
    /// 2.2 MB each and kept 65 MB: 5.6 GB for 86 of them). Results of a job that already ended
    /// (a straggler after a cancel) are dropped: nil.
    package func record(_ result: VariantResult) -> ProgressUpdate? {
        guard state == .partial else { return nil }
        var result = result
        if result.parameters.isEmpty, let plan = source?.grid { result.parameters = plan.parameters(of: result.index) }
        var kept = result
        var size = Self.estimatedBytes(result)
        if let reserved, case .full(let full) = result.detail {
            let extra = resultsBytes + size - reserved
            if extra > 0 {
                // At least a quarter more at a time, so a job outgrowing its estimate takes the lock rarely.
                let step = max(extra, reserved / 4)
                if grow(step) {
                    self.reserved = reserved + step
                } else if step > extra, grow(extra) {
                    self.reserved = reserved + extra
                } else {
                    kept.detail = .summary(BacktestSummary(full))
                    size = Self.estimatedBytes(kept)
                }
            }
        }
        results.append(kept)
        resultsBytes += size
        return ProgressUpdate(batchID: id, completed: completed, total: total, state: .partial, results: [result])
    }

    /// Replaces the FULL results this finished job keeps by their summaries (the registry does
    /// this before evicting anyone over its byte bound: re-attach still sees every variant, and
    /// GetVariantResults recomputes the FULL results). Returns the bytes it keeps now.
    package func downgradeToSummaries() -> Int {
        for (i, result) in results.enumerated() {
            if case .full(let full) = result.detail {
                results[i].detail = .summary(BacktestSummary(full))
            }
        }
        resultsBytes = results.reduce(0) { $0 + Self.estimatedBytes($1) }
        return keptBytes
    }

    private static func isFull(_ result: VariantResult) -> Bool {
        if case .full = result.detail { return true }
        return false
    }

    /// `value` of every successful variant's summary with its index (FULL results summarised),
    /// for ranking; summaries are built one at a time (`SummaryStore.View.ranked`).
    package func ranked(by value: @Sendable (BacktestSummary) -> Double) -> [(index: Int, value: Double)] {
        var ranked = summaries.view().ranked(by: value)
        for result in results {
            if let summary = result.summary { ranked.append((result.index, value(summary))) }
        }
        return ranked
    }

    /// The bytes this job keeps (estimated, see `estimatedBytes`): its results, and what its
    /// source holds to recompute them (`BatchSource.heldBytes`).
    package var keptBytes: Int {
        resultsBytes + summaries.count * SummaryStore.bytesPerSummary + (source?.heldBytes ?? 0)
    }

    /// The first streamed update: the job exists and has its id, nothing finished yet. Sent before
    /// the data fetch so that a client losing its connection during a slow fetch can re-attach.
    package func started() -> ProgressUpdate {
        ProgressUpdate(batchID: id, completed: 0, total: total, state: state)
    }

    /// Registers how to stop the job's work. A job cancelled before this is stopped at once.
    package func onCancel(_ stop: @escaping @Sendable () -> Void) {
        if cancelReason != nil { stop() } else { stopWork = stop }
    }

    /// CancelBatch: ends a running job CANCELLED (so results that finish later are dropped and
    /// no variant starts) and stops its work. Returns the state afterwards, without results: a
    /// job that already ended is left as it was.
    package func cancel() -> ProgressUpdate {
        if state == .partial {
            let reason = BacktestError(.cancelled, "batch cancelled by CancelBatch after \(completed) of \(total) variants")
            cancelReason = reason
            finish(.cancelled, error: reason)
            stopWork?()
        }
        stopWork = nil
        return ProgressUpdate(batchID: id, completed: completed, total: total, state: state, stats: stats, error: error)
    }

    /// Notes how many variants are running now.
    func noteRunning(_ count: Int) {
        peakParallelism = max(peakParallelism, count)
    }

    /// Ends the job. The first terminal state wins: a cancel after the final update changes
    /// nothing. Returns the terminal update to stream (without results: they went out already).
    @discardableResult
    package func finish(_ state: BatchState, stats: RunStatistics? = nil, error: BacktestError? = nil) -> ProgressUpdate {
        if self.state == .partial {
            summaries.seal()
            self.state = state
            self.stats = stats
            self.error = error
            finishedAt = .now
            if onFinish(keptBytes), results.contains(where: Self.isFull) {
                onResize(downgradeToSummaries())
            }
        }
        return ProgressUpdate(
            batchID: id, completed: completed, total: total, state: self.state, stats: self.stats, error: self.error)
    }

    /// What a kept result costs, roughly, in memory and encoded alike (bounded answers rely on
    /// it to fit a frame): a FULL result's per-day arrays (date, equity, benchmark), orders and
    /// a fixed part for metrics, names and warnings; a summary's or failure's
    /// `encodedSizeEstimate`. The registry's memory bound is in these units.
    static func estimatedBytes(_ result: VariantResult) -> Int {
        guard case .full(let backtest) = result.detail else { return result.encodedSizeEstimate }
        // Above the protobuf size too (about 20 bytes a day, 45 an order).
        let text = backtest.warnings.reduce(backtest.strategyName.utf8.count) { $0 + $1.encodedSizeEstimate }
        return 1024 + text + backtest.dates.count * 24 + backtest.orders.count * 96 + result.parametersBytes
    }

    /// The finished results at `positions` in finishing order (FULL results kept by the job
    /// first, then summaries), with the job's state and counts; a position past the end is left
    /// out. Costs O(positions), unlike `snapshot`, so a reader can page through a large batch.
    package func finished(at positions: [Int]) -> ProgressUpdate {
        lastReadAt = .now()
        let plan = source?.grid
        var answer: [VariantResult] = []
        var stored: [Int] = []
        for position in positions {
            if results.indices.contains(position) { answer.append(results[position]) } else { stored.append(position - results.count) }
        }
        if !stored.isEmpty {
            answer += summaries.results(at: stored, parameters: { (index: Int) -> [GridParameter] in plan?.parameters(of: index) ?? [] })
        }
        return ProgressUpdate(
            batchID: id, completed: completed, total: total, state: state, results: answer, stats: stats, error: error)
    }

    /// The answer to GetBatchStatus: the state, and the finished results the caller does not
    /// hold yet, by variant index, up to `maxBytes` (at least one). `completed` counts every
    /// finished variant, so a caller holding fewer results knows to ask again.
    package func snapshot(excluding known: Set<Int> = [], maxBytes: Int = .max) -> ProgressUpdate {
        lastReadAt = .now()
        var answer: [VariantResult] = []
        var bytes = 0
        // By variant index: the FULL results kept whole, else the summaries' finishing positions;
        // only the results answered are built (a 200,000-variant grid's every result, built for
        // each status read, cost ~240 MB).
        let full = Dictionary(results.map { ($0.index, $0) }, uniquingKeysWith: { first, _ in first })
        let stored = summaries.view()
        let positions = stored.positions(total: total)
        let plan = source?.grid
        for index in 0..<total where !known.contains(index) {
            let result: VariantResult
            if let kept = full[index] {
                result = kept
            } else if positions[index] >= 0 {
                result = stored.result(at: Int(positions[index]), parameters: { (index: Int) -> [GridParameter] in plan?.parameters(of: index) ?? [] })
            } else {
                continue
            }
            let size = Self.estimatedBytes(result)
            if !answer.isEmpty, bytes + size > maxBytes { break }
            answer.append(result)
            bytes += size
        }
        return ProgressUpdate(
            batchID: id, completed: completed, total: total, state: state, results: answer, stats: stats, error: error)
    }
}
