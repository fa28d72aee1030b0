import BacktestCore

/// The market data one backtest (or one batch) runs on: adjusted daily bars per ticker, each from
/// `IndicatorCalculator.dataEpoch` (or the ticker's first bar) through the settings' end date.
///
/// The bars must already carry the settings' price adjustment; the engine does not adjust again.
public struct MarketSnapshot: Sendable {
    public var bars: [String: DailyBars]
    /// "alpaca", "files" or "demo": copied into every result.
    public var source: String

    public init(bars: [String: DailyBars], source: String) {
        self.bars = bars
        self.source = source
    }

    public subscript(ticker: String) -> DailyBars? { bars[ticker] }
}
