import BacktestCore
import BacktestModel

extension BacktestResult {
    /// A rough size of this result encoded in an answer, in bytes, from what dominates it: about
    /// 40 bytes an order and 25 a day of the equity and benchmark curves. Not a bound: for where
    /// to encode an answer (`CallRunner.offloadBytes`) and to stop gathering FULL results before
    /// they outgrow a frame (GetVariantResults).
    package var encodedSizeEstimate: Int { orders.count * 40 + dates.count * 25 }
}

extension VariantResult {
    /// `BacktestResult.encodedSizeEstimate` for a FULL result. For a summary or a failure an
    /// upper estimate, which bounded answers (streamed updates, GetBatchStatus) rely on to fit a
    /// frame: 512 bytes (a summary of a short name encodes to about 425: its metrics and the
    /// benchmark's, 14 numbers each, and statistics) plus its name, warnings, error and
    /// parameters. (It was 256 a summary: 6,078 summaries of 256-byte names made a 4,153,984-byte
    /// GetBatchStatus answer, 1 % under the 4 MiB frame.)
    package var encodedSizeEstimate: Int {
        let own: Int
        switch detail {
        case .full(let backtest): return backtest.encodedSizeEstimate + parametersBytes
        case .summary(let summary):
            own = summary.strategyName.utf8.count + summary.warnings.reduce(0) { $0 + $1.encodedSizeEstimate }
        case .failure(let error):
            own = error.message.utf8.count + error.field.utf8.count
        }
        return 512 + own + parametersBytes
    }

    /// The encoded size of `parameters`, about.
    var parametersBytes: Int {
        parameters.reduce(0) { $0 + $1.path.utf8.count + $1.value.utf8.count + 8 }
    }
}

extension BacktestWarning {
    /// About its encoded size: message, tickers and dates.
    package var encodedSizeEstimate: Int {
        message.utf8.count + tickers.reduce(0) { $0 + $1.utf8.count + 2 } + 12 * dates.count + 24
    }
}

extension ProgressUpdate {
    /// The results' `encodedSizeEstimate` (a streamed update or a GetBatchStatus answer).
    package var encodedSizeEstimate: Int { results.reduce(0) { $0 + $1.encodedSizeEstimate } }
}
