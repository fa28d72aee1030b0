// Dispersion and range indicators with TA-Lib's arithmetic (see TALibAverages.swift).

extension TALib {
    /// TA_INT_VAR's values (population variance over `period` values; lookback period-1),
    /// computed stably: the window's mean from a compensated running sum (`sma`), then the sum of
    /// squared deviations from it over the window (two-pass). TA-Lib's running sums of x and x²
    /// lose about (mean / stddev)² ulps to cancellation (2.8e-9 relative on real prices).
    static func variance(_ input: [Double], period: Int) -> [Double] {
        var out = undefined(input.count)
        guard input.count >= period else { return out }
        let means = sma(input, period: period)
        for i in (period - 1)..<input.count {
            out[i] = windowSquaredDeviations(input, endingAt: i, period: period, mean: means[i]) / Double(period)
        }
        return out
    }

    /// Σ (x - mean)² over input[end - period + 1 ... end], compensated.
    @inline(__always)
    static func windowSquaredDeviations(_ input: [Double], endingAt end: Int, period: Int, mean: Double) -> Double {
        var squares = CompensatedSum()
        for j in (end - period + 1)...end {
            let deviation = input[j] - mean
            squares.addProduct(deviation, deviation)
        }
        return squares.value
    }

    /// TA_STDDEV with nbDev 1: sqrt of `variance`, 0 where the variance is (numerically) <= 0.
    static func standardDeviation(_ input: [Double], period: Int) -> [Double] {
        variance(input, period: period).map { $0.isNaN ? .nan : (isZeroOrNegative($0) ? 0 : $0.squareRoot()) }
    }

    /// TA_BBANDS with an SMA middle band and equal up/down deviations: the population standard
    /// deviation around the middle band (TA-Lib's TA_INT_stddev_using_precalc_ma), computed
    /// two-pass over each window like `variance`.
    static func bollinger(_ input: [Double], period: Int, deviations: Double) -> (upper: [Double], middle: [Double], lower: [Double]) {
        let middle = sma(input, period: period)
        var upper = undefined(input.count)
        var lower = undefined(input.count)
        guard input.count >= period else { return (upper, middle, lower) }
        for i in (period - 1)..<input.count {
            let meanSquare = windowSquaredDeviations(input, endingAt: i, period: period, mean: middle[i]) / Double(period)
            let deviation = isZeroOrNegative(meanSquare) ? 0 : meanSquare.squareRoot()
            let width = deviations == 1 ? deviation : deviation * deviations
            upper[i] = middle[i] + width
            lower[i] = middle[i] - width
        }
        return (upper, middle, lower)
    }

    /// TA_TRANGE for bar i >= 1.
    @inline(__always)
    static func trueRange(high: Double, low: Double, previousClose: Double) -> Double {
        var greatest = high - low
        let up = abs(previousClose - high)
        if up > greatest { greatest = up }
        let down = abs(previousClose - low)
        if down > greatest { greatest = down }
        return greatest
    }

    /// TA_ATR: Wilder smoothing of the true range seeded with the SMA of its first `period`
    /// values (bars 1...period); lookback period.
    static func atr(high: [Double], low: [Double], close: [Double], period: Int) -> [Double] {
        let count = close.count
        var out = undefined(count)
        guard count > period else { return out }
        var ranges = [Double](repeating: 0, count: count)
        for i in 1..<count { ranges[i] = trueRange(high: high[i], low: low[i], previousClose: close[i - 1]) }
        if period == 1 {
            for i in 1..<count { out[i] = ranges[i] }
            return out
        }
        var total = 0.0
        for i in 1...period { total += ranges[i] }
        var previous = total / Double(period)
        out[period] = previous
        for i in (period + 1)..<count {
            previous *= Double(period - 1)
            previous += ranges[i]
            previous /= Double(period)
            out[i] = previous
        }
        return out
    }

    /// TA_MAX / TA_MIN over the last `period` values; lookback period-1.
    static func rollingExtreme(_ input: [Double], period: Int, highest: Bool) -> [Double] {
        var out = undefined(input.count)
        guard input.count >= period else { return out }
        var extremeIndex = -1
        var extreme = 0.0
        for today in (period - 1)..<input.count {
            let trailing = today - period + 1
            let value = input[today]
            if extremeIndex < trailing {
                extremeIndex = trailing
                extreme = input[trailing]
                var i = trailing + 1
                while i <= today {
                    if highest ? input[i] > extreme : input[i] < extreme {
                        extremeIndex = i
                        extreme = input[i]
                    }
                    i += 1
                }
            } else if highest ? value >= extreme : value <= extreme {
                extremeIndex = today
                extreme = value
            }
            out[today] = extreme
        }
        return out
    }
}
