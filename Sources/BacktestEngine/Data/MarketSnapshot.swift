import BacktestCore

/// The market data one backtest (or one batch) runs on: adjusted daily bars per ticker, each from
/// `IndicatorCalculator.dataEpoch` (or the ticker's first bar) through the settings' end date.
///
/// The bars must already carry the settings' price adjustment; the engine does not adjust again.
package struct MarketSnapshot: Sendable {
    package var bars: [String: DailyBars]
    /// "alpaca", "files" or "demo": copied into every result.
    package var source: String

    package init(bars: [String: DailyBars], source: String) {
        self.bars = bars
        self.source = source
    }

    package subscript(ticker: String) -> DailyBars? { bars[ticker] }
}
