import BacktestCore
import BacktestModel
import BacktestProtocol

/// Length bounds on the request strings the server repeats back — in RESPONSE headers, results,
/// error messages and logs — so that every answer stays far below the smallest frame limit the
/// server accepts (`ServerConfiguration.minimumMaxFramePayload`) and a call always ends with a
/// RESPONSE. PROTOCOL.md §5 states the same numbers. Lengths are UTF-8 bytes.
///
/// A string over its bound is INVALID_ARGUMENT naming the field, with a short escaped prefix of
/// the value; the RESPONSE then carries no `request_id` when that is the string too long.
/// Tickers are bounded by their syntax (`Ticker.maxLength`, checked by the data sources).
enum EchoBounds {
    /// `header.request_id`, echoed in `ResponseHeader.request_id` and the call's log lines.
    static let maxRequestIDBytes = 128
    /// `header.client`, in the call's log lines.
    static let maxClientBytes = 128
    /// A `batch_id` (GetBatchStatus, CancelBatch, GetVariantResults), echoed in answers and errors.
    static let maxBatchIDBytes = 128
    /// A strategy's `name` (RunBacktest's, every RunBatch variant's), echoed in its result.
    static let maxStrategyNameBytes = 256
    /// How much of an over-long value an error message shows.
    static let shownPrefixCharacters = 32

    /// `requestID` when it is within its bound, else "" (it is never echoed whole).
    static func echoable(_ requestID: String) -> String {
        requestID.utf8.count <= maxRequestIDBytes ? requestID : ""
    }

    /// Checks the header's strings.
    /// - Throws: INVALID_ARGUMENT on `header.request_id` or `header.client`.
    static func check(_ header: RequestHeader) throws(BacktestError) {
        try check(header.requestID, max: maxRequestIDBytes, field: "header.request_id")
        try check(header.client, max: maxClientBytes, field: "header.client")
    }

    /// Checks the method's echoed ids and names.
    /// - Throws: INVALID_ARGUMENT naming the field (a path from the method, as other errors).
    static func check(_ method: CallMethod) throws(BacktestError) {
        switch method {
        case .runBacktest(let request):
            try check(request.strategy.name, max: maxStrategyNameBytes, field: "run_backtest.strategy.name")
        case .runBatch(let request):
            for (index, variant) in request.variants.enumerated() {
                try check(variant.name, max: maxStrategyNameBytes, field: "run_batch.variants[\(index)].name")
            }
        case .batchStatus(let batchID, _):
            try check(batchID, max: maxBatchIDBytes, field: "get_batch_status.batch_id")
        case .cancelBatch(let batchID):
            try check(batchID, max: maxBatchIDBytes, field: "cancel_batch.batch_id")
        case .variantResults(let batchID, _):
            try check(batchID, max: maxBatchIDBytes, field: "get_variant_results.batch_id")
        case .indicators(let request):
            // Series keys are echoed in their errors; a key is short (`macd:12,26,9:signal`).
            for (index, key) in request.series.enumerated() {
                try check(key, max: maxStrategyNameBytes, field: "get_indicators.series[\(index)]")
            }
        case .serverInfo, .purgeCache:
            break
        }
    }

    private static func check(_ value: String, max: Int, field: String) throws(BacktestError) {
        let length = value.utf8.count
        guard length > max else { return }
        throw BacktestError.invalidArgument(
            "\(field) is \(length) bytes, above the limit of \(max) bytes (it starts \(shortPrefix(value)))", field: field)
    }

    /// The first `shownPrefixCharacters` characters, escaped, with "..." when cut.
    static func shortPrefix(_ value: String) -> String {
        let prefix = String(value.prefix(shownPrefixCharacters)).debugDescription
        return value.count > shownPrefixCharacters ? prefix + "..." : prefix
    }
}
