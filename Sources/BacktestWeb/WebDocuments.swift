import BacktestCore
import BacktestModel
import BacktestReporting
import Foundation

// The JSON the web API answers with (docs/web-api.md). Keys are snake_case; a metric that is
// undefined or infinite is null, as in `backtest run --json` (ResultDocument, reused for a FULL
// result).

/// `{"error": {"code": "INVALID_ARGUMENT", "message": "...", "field": "strategy.positions[0].weight"}}`.
///
/// The message and field are cut to `maxMessageCharacters` / `maxFieldCharacters`, so an answer
/// never repeats an unbounded part of the request.
struct ErrorDocument: Codable, Sendable, Equatable {
    struct Body: Codable, Sendable, Equatable {
        var code: String
        var message: String
        var field: String
    }

    var error: Body

    static let maxMessageCharacters = 400
    static let maxFieldCharacters = 200

    init(_ error: BacktestError) {
        self.error = Body(
            code: "\(error.code)", message: Self.bounded(error.message, Self.maxMessageCharacters),
            field: Self.bounded(error.field, Self.maxFieldCharacters))
    }

    static func bounded(_ text: String, _ limit: Int) -> String {
        text.count <= limit ? text : String(text.prefix(limit)) + "…"
    }
}

/// One variant of a batch as the dashboard's table shows it: its summary (never curves), or its
/// error. FULL results of a batch are read one at a time from `/api/batches/{id}/variants/{index}`.
struct VariantDocument: Codable, Sendable, Equatable {
    struct Parameter: Codable, Sendable, Equatable {
        var path: String
        var value: String
    }

    var index: Int
    /// "ok" or "error".
    var status: String
    /// The grid's axis values, in axis order; empty for listed variants.
    var parameters: [Parameter]
    var strategyName: String?
    var finalEquity: Double?
    var orderCount: Int?
    var metrics: ResultDocument.MetricsDocument?
    var benchmarkMetrics: ResultDocument.MetricsDocument?
    var warnings: [String]
    var error: ErrorDocument.Body?

    init(_ variant: VariantResult) {
        index = variant.index
        parameters = variant.parameters.map { Parameter(path: $0.path, value: $0.value) }
        warnings = []
        if let summary = variant.summary {
            status = "ok"
            strategyName = summary.strategyName
            finalEquity = summary.finalEquity.isFinite ? summary.finalEquity : nil
            orderCount = summary.orderCount
            metrics = ResultDocument.MetricsDocument(summary.metrics)
            benchmarkMetrics = ResultDocument.MetricsDocument(summary.benchmarkMetrics)
            warnings = summary.warnings.map(\.message)
        } else {
            status = "error"
            error = variant.error.map { ErrorDocument($0).error }
        }
    }
}

/// A batch's progress: a streamed update (the variants that finished since the previous one)
/// or a status answer (the finished variants the caller did not list as known).
struct UpdateDocument: Codable, Sendable {
    var batchId: String
    /// "partial", "final", "cancelled" or "failed".
    var state: String
    var completed: Int
    var total: Int
    /// The table header: "Partial Results (3/8 complete)", "Final Results", ...
    var header: String
    var results: [VariantDocument]
    var stats: StatsDocument?
    var error: ErrorDocument.Body?

    struct StatsDocument: Codable, Sendable {
        var totalMs, dataMs, indicatorsMs, simulationMs, variantsPerSecond: Double
    }

    init(_ update: ProgressUpdate) {
        batchId = update.batchID
        state = update.state.rawValue
        completed = update.completed
        total = update.total
        header = switch update.state {
        case .final: "Final Results"
        case .partial: "Partial Results (\(update.completed)/\(update.total) complete)"
        case .cancelled: "Cancelled Results (\(update.completed)/\(update.total) complete)"
        case .failed: "Failed Results (\(update.completed)/\(update.total) complete)"
        }
        results = update.results.map(VariantDocument.init)
        stats = update.stats.map {
            StatsDocument(totalMs: $0.totalMs, dataMs: $0.dataMs, indicatorsMs: $0.indicatorsMs,
                          simulationMs: $0.simulationMs, variantsPerSecond: $0.variantsPerSecond)
        }
        error = update.error.map { ErrorDocument($0).error }
    }
}

/// The JSON coders of the web API: snake_case keys, compact output.
enum WebJSON {
    static func encode(_ value: some Encodable) -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        // The documents hold finite numbers only (ResultDocument maps the rest to null).
        return (try? encoder.encode(value)) ?? Data(#"{"error":{"code":"INTERNAL","message":"encoding failed","field":""}}"#.utf8)
    }
}
