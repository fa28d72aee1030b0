/// How prices are adjusted for corporate actions before anything is computed on them.
public enum PriceAdjustment: String, Sendable, CaseIterable, Codable {
    /// Prices as traded: a 4:1 split shows as a 75 % crash.
    case raw
    /// Split-adjusted prices and volumes (the default, and what the references use).
    case split
    /// Split- and dividend-adjusted: price moves include reinvested dividends.
    case all

    public static let `default` = PriceAdjustment.split
}

extension DailyBars {
    /// Applies `adjustment` to raw bars that carry their split and dividend columns, with the
    /// conventions of shared/market-data/README.md (those of the reference results):
    ///
    /// - split: every price before a split's ex-date is divided by the product of the ratios of
    ///   all later splits, and every volume multiplied by it.
    /// - all: split adjustment, then every price before a dividend's ex-date is multiplied by
    ///   (1 - dividend / raw close of the day before the ex-date), compounded over later dividends.
    ///
    /// The result carries no corporate actions (they are folded into the prices): split ratios
    /// become 1; dividends are kept, restated per split-adjusted share, for `split`, and zeroed for
    /// `all`, where they are already in the prices.
    public func adjusted(_ adjustment: PriceAdjustment) -> DailyBars {
        guard adjustment != .raw, hasCorporateActions else { return self }
        var result = self
        var splitFactor = 1.0     // product of the ratios of splits after the current bar
        var dividendFactor = 1.0  // product of the dividend factors after the current bar
        for i in stride(from: count - 1, through: 0, by: -1) {
            let priceFactor = dividendFactor / splitFactor
            result.open[i] = open[i] * priceFactor
            result.high[i] = high[i] * priceFactor
            result.low[i] = low[i] * priceFactor
            result.close[i] = close[i] * priceFactor
            result.volume[i] = volume[i] * splitFactor
            result.splitRatio[i] = 1
            result.dividend[i] = adjustment == .all ? 0 : dividend[i] / splitFactor
            // Actions on bar i's ex-date apply to bars before i.
            if splitRatio[i] != 1 && splitRatio[i] > 0 { splitFactor *= splitRatio[i] }
            if adjustment == .all && dividend[i] != 0 && i > 0 && close[i - 1] > 0 {
                dividendFactor *= 1 - dividend[i] / close[i - 1]
            }
        }
        return result
    }
}
