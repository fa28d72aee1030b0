import BacktestCore
import BacktestModel
import Foundation

/// The JSON that `backtest batch --json` prints once the batch ended: the variants in table order
/// (sorted when final, request order otherwise) with the same snake_case metrics as
/// `ResultDocument`:
///
///     {"batch_id": "b-12", "state": "final", "total": 8, "completed": 8, "sorted_by": "sharpe",
///      "variants": [{"rank": 1, "index": 3, "label": "positions[0].weight=1", "status": "ok",
///                    "final_equity": 251234.5, "metrics": {"sharpe": 0.61, ...}, "error": null}],
///      "stats": {"total_ms": 41.0, "variants_per_second": 195.1, ...}}
///
/// "status" is "ok", "error" or "running" (only when the batch did not finish); `sorted_by` is
/// null unless the batch is final.
package struct BatchDocument: Codable, Sendable, Equatable {
    package struct ErrorDocument: Codable, Sendable, Equatable {
        package var code: String
        package var message: String
        package var field: String
    }

    package struct VariantDocument: Codable, Sendable, Equatable {
        @ExplicitNull package var rank: Int?
        package var index: Int
        package var label: String
        package var status: String
        @ExplicitNull package var finalEquity: Double? = nil
        @ExplicitNull package var metrics: ResultDocument.MetricsDocument? = nil
        @ExplicitNull package var error: ErrorDocument? = nil
    }

    package struct BatchStatsDocument: Codable, Sendable, Equatable {
        package var totalMs, dataMs, indicatorsMs, simulationMs, variantsPerSecond: Double
        package var cacheHits, cacheMisses, apiCalls: Int
    }

    package var batchId: String
    package var state: String
    package var total: Int
    package var completed: Int
    @ExplicitNull package var sortedBy: String?
    @ExplicitNull package var error: ErrorDocument?
    package var variants: [VariantDocument]
    @ExplicitNull package var stats: BatchStatsDocument?

    /// The document of a finished batch.
    package init(_ table: FinalBatchTable) {
        self.init(rows: table.rows, ranked: true, batchID: table.batchID, state: .final, error: nil, stats: table.stats)
        sortedBy = table.sortedBy.rawValue
    }

    /// The document of a batch that ended without finishing (cancelled, failed, disconnected).
    package init(unfinished table: BatchTable) {
        self.init(rows: table.rows, ranked: false, batchID: table.batchID, state: table.state, error: table.error, stats: table.stats)
    }

    private init(rows: [BatchRow], ranked: Bool, batchID: String, state: BatchState, error: BacktestError?, stats: RunStatistics?) {
        batchId = batchID
        self.state = state.rawValue
        total = rows.count
        completed = rows.count(where: \.isFinished)
        sortedBy = nil
        self.error = error.map(Self.describe)
        variants = rows.enumerated().map { rank, row in
            var document = VariantDocument(rank: ranked ? rank + 1 : nil, index: row.index, label: row.label, status: "running")
            switch row.state {
            case .running: break
            case .done(let summary):
                document.status = "ok"
                document.finalEquity = finite(summary.finalEquity)
                document.metrics = ResultDocument.MetricsDocument(summary.metrics)
            case .failed(let error):
                document.status = "error"
                document.error = Self.describe(error)
            }
            return document
        }
        self.stats = stats.map {
            BatchStatsDocument(totalMs: $0.totalMs, dataMs: $0.dataMs, indicatorsMs: $0.indicatorsMs, simulationMs: $0.simulationMs,
                               variantsPerSecond: $0.variantsPerSecond, cacheHits: $0.cacheHits, cacheMisses: $0.cacheMisses,
                               apiCalls: $0.apiCalls)
        }
    }

    private static func describe(_ error: BacktestError) -> ErrorDocument {
        ErrorDocument(code: "\(error.code)", message: error.message, field: error.field)
    }

    package func json() throws -> Data {
        try JSONCoding.encoder.encode(self)
    }
}

/// Redraws a block of lines in place on a terminal: cursor up over the previous frame, clear to
/// the end of the screen, print the new one. Lines wider than the terminal would wrap and break
/// the count, so callers keep tables narrower than the terminal or accept a scrolling redraw.
package struct LiveRedraw: Sendable {
    private var previousLineCount = 0

    package init() {}

    /// The bytes to write for `lines`, replacing what the previous call wrote.
    package mutating func frame(_ lines: [String]) -> String {
        var text = previousLineCount > 0 ? "\u{1B}[\(previousLineCount)F\u{1B}[J" : ""
        text += lines.joined(separator: "\n") + "\n"
        previousLineCount = lines.count
        return text
    }
}
