import BacktestCore
import BacktestModel

/// The live table of a running batch: one row per variant in request order, "Running..." until
/// its result (or its error) arrives.
///
/// A partial table is never sorted and never exported: a ranking of the variants that happen to
/// have finished first is misleading, and a half-written CSV looks complete. Sorting and CSV live
/// on `FinalBatchTable`, which only `finalized(sortBy:)` makes, and only once the server said
/// the batch is final.
package struct BatchTable: Sendable {
    package private(set) var rows: [BatchRow]
    package private(set) var state: BatchState = .partial
    package private(set) var batchID = ""
    /// The whole batch's statistics, from the final update.
    package private(set) var stats: RunStatistics?
    /// Why the batch as a whole stopped (cancelled, failed, connection lost).
    package private(set) var error: BacktestError?

    package init(labels: [String]) {
        rows = labels.enumerated().map { BatchRow(index: $0.offset, label: $0.element, state: .running) }
    }

    package init(variants: [Variant]) {
        self.init(labels: variants.map(\.label))
    }

    package var total: Int { rows.count }
    package var completed: Int { rows.count(where: \.isFinished) }
    package var isFinal: Bool { state == .final }

    /// Takes in one streamed update. Results for an index outside the table are ignored: the
    /// table describes the batch this client sent, whatever a confused server says.
    package mutating func apply(_ update: ProgressUpdate) {
        if !update.batchID.isEmpty { batchID = update.batchID }
        for variant in update.results where rows.indices.contains(variant.index) {
            switch variant.outcome {
            case .success(let result): rows[variant.index].state = .done(VariantSummary(result))
            case .failure(let error): rows[variant.index].state = .failed(error)
            }
        }
        if let stats = update.stats { self.stats = stats }
        if let error = update.error { self.error = error }
        // A "final" that leaves rows running is not final for this table.
        state = update.state == .final && completed < total ? .partial : update.state
    }

    /// The stream ended without a final update (connection lost, deadline): the table stays
    /// partial for good.
    package mutating func interrupt(_ error: BacktestError) {
        guard state != .final else { return }
        self.error = error
        state = .cancelled
    }

    /// "Partial Results (3/8 complete)", "Final Results", "Cancelled Results (3/8 complete)",
    /// "Failed Results (0/8 complete)".
    package var header: String {
        switch state {
        case .final: "Final Results"
        case .partial: "Partial Results (\(completed)/\(total) complete)"
        case .cancelled: "Cancelled Results (\(completed)/\(total) complete)"
        case .failed: "Failed Results (\(completed)/\(total) complete)"
        }
    }

    /// The table in request order.
    package func render(columns: [BatchMetric] = BatchTableLayout.defaultColumns) -> [String] {
        var lines = [header]
        if let error {
            lines.append("batch error: \(BatchTableLayout.describe(error))")
        }
        lines += BatchTableLayout(rows: rows, columns: columns, ended: state == .cancelled || state == .failed).lines()
        return lines
    }

    /// One short line for logs and pipes: "Partial Results (3/8 complete): #2 done, #5 failed".
    package func progressLine(after update: ProgressUpdate) -> String {
        let finished = update.results.filter { rows.indices.contains($0.index) }.map { variant in
            switch variant.outcome {
            case .success: "#\(variant.index) done"
            case .failure: "#\(variant.index) failed"
            }
        }
        return finished.isEmpty ? header : header + ": " + finished.joined(separator: ", ")
    }
}
