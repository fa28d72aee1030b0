// Momentum, trend and volume indicators with TA-Lib's arithmetic (see TALibAverages.swift).

extension TALib {
    /// TA_RSI (Wilder): average gain and loss of the first `period` changes, then Wilder
    /// smoothing; 0 when both averages are zero; lookback period.
    static func rsi(_ input: [Double], period: Int) -> [Double] {
        var out = undefined(input.count)
        guard input.count > period else { return out }
        let n = Double(period)
        var gain = 0.0
        var loss = 0.0
        var previous = input[0]
        for i in 1...period {
            let change = input[i] - previous
            previous = input[i]
            if change < 0 { loss -= change } else { gain += change }
        }
        loss /= n
        gain /= n
        func value() -> Double {
            let total = gain + loss
            return isZero(total) ? 0 : 100 * (gain / total)
        }
        out[period] = value()
        for i in (period + 1)..<input.count {
            let change = input[i] - previous
            previous = input[i]
            loss *= n - 1
            gain *= n - 1
            if change < 0 { loss -= change } else { gain += change }
            loss /= n
            gain /= n
            out[i] = value()
        }
        return out
    }

    /// TA_ROC: (price / price N bars ago - 1) x 100; 0 when the old price is 0.
    static func roc(_ input: [Double], period: Int) -> [Double] {
        var out = undefined(input.count)
        guard input.count > period else { return out }
        for i in period..<input.count {
            let old = input[i - period]
            // (x - old) / old rather than TA-Lib's x / old - 1: exact to an ulp near zero.
            out[i] = old != 0 ? (input[i] - old) / old * 100 : 0
        }
        return out
    }

    /// TA_STOCH with SMA smoothing: fast %K over `fastK` bars, slow %K = SMA(fast %K, slowK),
    /// slow %D = SMA(slow %K, slowD). Both outputs start at (fastK-1)+(slowK-1)+(slowD-1).
    static func stochastic(high: [Double], low: [Double], close: [Double], fastK: Int, slowK: Int, slowD: Int)
        -> (k: [Double], d: [Double])
    {
        let count = close.count
        var kOut = undefined(count)
        var dOut = undefined(count)
        let lookbackK = fastK - 1
        let lookbackTotal = lookbackK + (slowK - 1) + (slowD - 1)
        guard count > lookbackTotal else { return (kOut, dOut) }
        let highest = rollingExtreme(high, period: fastK, highest: true)
        let lowest = rollingExtreme(low, period: fastK, highest: false)
        var fast: [Double] = []
        fast.reserveCapacity(count - lookbackK)
        for today in lookbackK..<count {
            let diff = (highest[today] - lowest[today]) / 100.0
            fast.append(diff != 0 ? (close[today] - lowest[today]) / diff : 0)
        }
        let slow = sma(fast, period: slowK)
        let slowKValues = Array(slow[(slowK - 1)...])
        let d = sma(slowKValues, period: slowD)
        for j in (slowD - 1)..<slowKValues.count {
            let i = j + lookbackK + slowK - 1
            kOut[i] = slowKValues[j]
            dOut[i] = d[j]
        }
        return (kOut, dOut)
    }

    /// TA_ADX: Wilder-smoothed +DM, -DM and true range, DX per bar, ADX = Wilder average of DX
    /// seeded with the mean of the first `period` DX values; lookback 2 x period - 1.
    static func adx(high: [Double], low: [Double], close: [Double], period: Int) -> [Double] {
        let count = close.count
        var out = undefined(count)
        let lookback = 2 * period - 1
        guard count > lookback else { return out }
        let n = Double(period)
        var plusDM = 0.0
        var minusDM = 0.0
        var trueRangeSum = 0.0
        var previousHigh = high[0]
        var previousLow = low[0]
        var previousClose = close[0]
        var today = 0

        /// Advances one bar: directional movement and true range of bar `today`.
        func step() -> (plus: Double, minus: Double, range: Double) {
            today += 1
            let diffP = high[today] - previousHigh
            previousHigh = high[today]
            let diffM = previousLow - low[today]
            previousLow = low[today]
            var plus = 0.0
            var minus = 0.0
            if diffM > 0 && diffP < diffM {
                minus = diffM
            } else if diffP > 0 && diffP > diffM {
                plus = diffP
            }
            let range = trueRange(high: previousHigh, low: previousLow, previousClose: previousClose)
            previousClose = close[today]
            return (plus, minus, range)
        }
        func smooth(_ move: (plus: Double, minus: Double, range: Double)) {
            minusDM -= minusDM / n
            plusDM -= plusDM / n
            minusDM += move.minus
            plusDM += move.plus
            trueRangeSum = trueRangeSum - (trueRangeSum / n) + move.range
        }
        /// DX of the current smoothed values, nil where TA-Lib skips the update.
        func dx() -> Double? {
            guard !isZero(trueRangeSum) else { return nil }
            let minusDI = 100.0 * (minusDM / trueRangeSum)
            let plusDI = 100.0 * (plusDM / trueRangeSum)
            let sum = minusDI + plusDI
            guard !isZero(sum) else { return nil }
            return 100.0 * (abs(minusDI - plusDI) / sum)
        }

        for _ in 0..<(period - 1) {
            let move = step()
            minusDM += move.minus
            plusDM += move.plus
            trueRangeSum += move.range
        }
        var sumDX = 0.0
        for _ in 0..<period {
            smooth(step())
            if let value = dx() { sumDX += value }
        }
        var average = sumDX / n
        out[today] = average
        while today < count - 1 {
            smooth(step())
            if let value = dx() { average = ((average * (n - 1)) + value) / n }
            out[today] = average
        }
        return out
    }

    /// TA_OBV: starts at the first bar's volume; adds the volume on up closes, subtracts it on
    /// down closes.
    static func obv(close: [Double], volume: [Double]) -> [Double] {
        guard let first = volume.first else { return [] }
        var out = [Double](repeating: 0, count: close.count)
        var total = first
        var previous = close[0]
        for i in 0..<close.count {
            if close[i] > previous {
                total += volume[i]
            } else if close[i] < previous {
                total -= volume[i]
            }
            out[i] = total
            previous = close[i]
        }
        return out
    }
}
