// Window statistics of daily returns, as defined in shared/reference/README.md. Daily return
// r[t] = close[t] / close[t-1] - 1. Computed directly per window (two-pass for the stddev)
// rather than with running sums: they are cheap and this keeps them exact to rounding.

enum ReturnWindowStatistics {
    static func dailyReturns(_ close: [Double]) -> [Double] {
        guard close.count > 1 else { return [] }
        return (1..<close.count).map { close[$0] / close[$0 - 1] - 1 }
    }

    /// Mean of returns[t - period ..< t]: the returns known at the close of bar t.
    private static func windowMean(_ returns: [Double], endingBefore t: Int, period: Int) -> Double {
        var sum = CompensatedSum()
        for i in (t - period)..<t { sum.add(returns[i]) }
        return sum.value / Double(period)
    }

    /// Mean of the last `period` daily returns; defined from bar `period`.
    static func mean(_ close: [Double], period: Int) -> [Double] {
        let returns = dailyReturns(close)
        var out = TALib.undefined(close.count)
        guard close.count > period else { return out }
        for t in period..<close.count {
            out[t] = windowMean(returns, endingBefore: t, period: period)
        }
        return out
    }

    /// Population standard deviation of the last `period` daily returns; defined from bar `period`.
    static func standardDeviation(_ close: [Double], period: Int) -> [Double] {
        let returns = dailyReturns(close)
        var out = TALib.undefined(close.count)
        guard close.count > period else { return out }
        for t in period..<close.count {
            let mean = windowMean(returns, endingBefore: t, period: period)
            var squares = CompensatedSum()
            for i in (t - period)..<t { squares.addProduct(returns[i] - mean, returns[i] - mean) }
            out[t] = (squares.value / Double(period)).squareRoot()
        }
        return out
    }

    /// close[t] / close[t-period] - 1.
    static func cumulativeReturn(_ close: [Double], period: Int) -> [Double] {
        var out = TALib.undefined(close.count)
        guard close.count > period else { return out }
        // (c[t] - c[t-p]) / c[t-p]: the difference is exact for nearby prices, so the result is
        // within an ulp of the exact return even when it is near zero (c / c' - 1 is not).
        for t in period..<close.count { out[t] = (close[t] - close[t - period]) / close[t - period] }
        return out
    }

    /// Largest fall from a running peak to a later close within the last `period` closes, as a
    /// positive fraction (0 when the window only rises); defined from bar period-1.
    static func maxDrawdown(_ close: [Double], period: Int) -> [Double] {
        var out = TALib.undefined(close.count)
        guard close.count >= period else { return out }
        for t in (period - 1)..<close.count {
            var peak = close[t - period + 1]
            var worst = 0.0
            for i in (t - period + 1)...t {
                if close[i] > peak { peak = close[i] }
                let fall = (peak - close[i]) / peak
                if fall > worst { worst = fall }
            }
            out[t] = worst
        }
        return out
    }
}
