import BacktestModel

extension BacktestResult {
    /// A rough size of this result encoded in an answer, in bytes, from what dominates it: about
    /// 40 bytes an order and 25 a day of the equity and benchmark curves. Not a bound: for where
    /// to encode an answer (`CallRunner.offloadBytes`) and to stop gathering FULL results before
    /// they outgrow a frame (GetVariantResults).
    package var encodedSizeEstimate: Int { orders.count * 40 + dates.count * 25 }
}

extension VariantResult {
    /// `BacktestResult.encodedSizeEstimate` for a FULL result; 256 bytes for a summary or a failure.
    package var encodedSizeEstimate: Int {
        if case .full(let backtest) = detail { backtest.encodedSizeEstimate } else { 256 }
    }
}

extension ProgressUpdate {
    /// The results' `encodedSizeEstimate` (a streamed update or a GetBatchStatus answer).
    package var encodedSizeEstimate: Int { results.reduce(0) { $0 + $1.encodedSizeEstimate } }
}
