// Dispersion and range indicators with TA-Lib's arithmetic (see TALibAverages.swift).

extension TALib {
    /// TA_INT_VAR: population variance from running sums of x and x²; lookback period-1.
    static func variance(_ input: [Double], period: Int) -> [Double] {
        var out = undefined(input.count)
        guard input.count >= period else { return out }
        var total1 = 0.0
        var total2 = 0.0
        for i in 0..<(period - 1) {
            total1 += input[i]
            total2 += input[i] * input[i]
        }
        var trailing = 0
        let n = Double(period)
        for i in (period - 1)..<input.count {
            total1 += input[i]
            total2 += input[i] * input[i]
            let mean1 = total1 / n
            let mean2 = total2 / n
            let old = input[trailing]
            trailing += 1
            total1 -= old
            total2 -= old * old
            out[i] = mean2 - mean1 * mean1
        }
        return out
    }

    /// TA_STDDEV with nbDev 1: sqrt of `variance`, 0 where the variance is (numerically) <= 0.
    static func standardDeviation(_ input: [Double], period: Int) -> [Double] {
        variance(input, period: period).map { $0.isNaN ? .nan : (isZeroOrNegative($0) ? 0 : $0.squareRoot()) }
    }

    /// TA_BBANDS with an SMA middle band and equal up/down deviations; the deviation is TA-Lib's
    /// TA_INT_stddev_using_precalc_ma (running sum of squares minus the SMA squared).
    static func bollinger(_ input: [Double], period: Int, deviations: Double) -> (upper: [Double], middle: [Double], lower: [Double]) {
        let middle = sma(input, period: period)
        var upper = undefined(input.count)
        var lower = undefined(input.count)
        guard input.count >= period else { return (upper, middle, lower) }
        var total2 = 0.0
        for i in 0..<(period - 1) { total2 += input[i] * input[i] }
        var trailing = 0
        for i in (period - 1)..<input.count {
            total2 += input[i] * input[i]
            var meanSquare = total2 / Double(period)
            total2 -= input[trailing] * input[trailing]
            trailing += 1
            meanSquare -= middle[i] * middle[i]
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
