/// What a bar must satisfy before anything is computed from it, checked where every source
/// loads its data (files, Alpaca, demo) so that bad data is rejected the same way whatever
/// delivered it, instead of showing up later as an equity of 0, a -100 % drawdown or a false
/// "benchmark is flat" warning.
///
/// A bar is invalid when:
/// - open, high, low or close is not a positive finite number;
/// - high is below low;
/// - volume is negative or not finite;
/// - the split ratio is not a positive finite number (files read a `split_coefficient` of 0 as
///   "no split", 1, before this check);
/// - the dividend is negative or not finite, or is at least the previous close (its adjustment
///   factor 1 - dividend / previous close would be <= 0).
public struct InvalidBar: Sendable, Hashable {
    /// Index of the bar in its `DailyBars`.
    public let index: Int
    public let date: TradingDate
    /// The column's CSV name: open, high, low, close, volume, split_coefficient, dividend_amount.
    public let column: String
    public let value: Double
    /// Why the value cannot be used, e.g. "is not a positive finite price".
    public let reason: String
}

extension DailyBars {
    /// The first invalid bar (see `InvalidBar`), or nil when every bar can be used.
    public func firstInvalidBar() -> InvalidBar? {
        for i in 0..<count {
            func invalid(_ column: String, _ value: Double, _ reason: String) -> InvalidBar {
                InvalidBar(index: i, date: dates[i], column: column, value: value, reason: reason)
            }
            for (column, value) in [("open", open[i]), ("high", high[i]), ("low", low[i]), ("close", close[i])]
            where !(value > 0 && value.isFinite) {
                return invalid(column, value, "is not a positive finite price")
            }
            if high[i] < low[i] { return invalid("high", high[i], "is below the low \(low[i])") }
            if !(volume[i] >= 0 && volume[i].isFinite) { return invalid("volume", volume[i], "is not a non-negative finite number") }
            if !(splitRatio[i] > 0 && splitRatio[i].isFinite) {
                return invalid("split_coefficient", splitRatio[i], "is not a positive finite split ratio")
            }
            let cash = dividend[i]
            if !(cash >= 0 && cash.isFinite) { return invalid("dividend_amount", cash, "is not a non-negative finite amount") }
            if cash > 0 && i > 0 && cash >= close[i - 1] {
                return invalid(
                    "dividend_amount", cash,
                    "is at least the previous close \(close[i - 1]): its adjustment factor would be <= 0")
            }
        }
        return nil
    }

    /// Throws DATA_LOSS naming `origin` (a file, a vendor), the symbol, the date and the column of
    /// the first invalid bar.
    public func validate(origin: String) throws(BacktestError) {
        guard let bad = firstInvalidBar() else { return }
        throw BacktestError(
            .dataLoss, "\(origin): \(symbol) on \(bad.date): \(bad.column) \(bad.value) \(bad.reason); the data cannot be used")
    }
}
