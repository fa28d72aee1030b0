import BacktestCore
import BacktestModel

/// Computes indicator series: pure functions of (spec, bars), which is what makes them cacheable.
///
/// Data epoch: a series is computed over *all* the bars it is given, and the value on a date
/// depends on every bar before it (EMA, RSI, ATR and ADX never forget their seed). So that a
/// value is canonical for its date, whatever backtest asks for it, callers pass a ticker's bars
/// from `IndicatorCalculator.dataEpoch` (or the ticker's first bar when it listed later) up to
/// the backtest's end. Values on a date then never depend on the requested start, and a cached
/// series can be extended but never needs recomputing for a different start.
package enum IndicatorCalculator {
    /// First date of the history indicators are computed over: the first day of the shared
    /// market data (and the reference results), 1999-11-01.
    package static let dataEpoch = TradingDate(year: 1999, month: 11, day: 1)!

    /// One series aligned with `bars.dates`; NaN marks bars where the indicator is not yet defined
    /// (warm-up). Throws INVALID_ARGUMENT (field `field`) for an unknown type or bad parameters.
    package static func compute(_ spec: IndicatorSpec, bars: DailyBars, field: String = "indicator") throws(BacktestError) -> [Double] {
        let spec = try IndicatorCatalog.normalize(spec, field: field)
        return computeNormalized(spec, bars: bars)
    }

    /// `compute` for a spec that is already normalized (an `IndicatorKey`'s).
    package static func compute(_ key: IndicatorKey, bars: DailyBars) -> [Double] {
        computeNormalized(key.spec, bars: bars)
    }

    static func computeNormalized(_ spec: IndicatorSpec, bars: DailyBars) -> [Double] {
        let close = bars.close
        let p = spec.params.map { Int($0) }
        switch spec.type {
        case "sma": return TALib.sma(close, period: p[0])
        case "ema": return TALib.ema(close, period: p[0])
        case "wma": return TALib.wma(close, period: p[0])
        case "rsi": return TALib.rsi(close, period: p[0])
        case "macd":
            let result = TALib.macd(close, fast: p[0], slow: p[1], signal: p[2])
            switch spec.output {
            case "signal": return result.signal
            case "hist": return result.hist
            default: return result.macd
            }
        case "bbands":
            let bands = TALib.bollinger(close, period: p[0], deviations: spec.params[1])
            switch spec.output {
            case "upper": return bands.upper
            case "lower": return bands.lower
            case "percent_b":
                return (0..<close.count).map { i in
                    let width = bands.upper[i] - bands.lower[i]
                    return width != 0 ? (close[i] - bands.lower[i]) / width : .nan
                }
            default: return bands.middle
            }
        case "atr": return TALib.atr(high: bars.high, low: bars.low, close: close, period: p[0])
        case "stddev": return TALib.standardDeviation(close, period: p[0])
        case "roc": return TALib.roc(close, period: p[0])
        case "stoch":
            let result = TALib.stochastic(
                high: bars.high, low: bars.low, close: close, fastK: p[0], slowK: p[1], slowD: p[2])
            return spec.output == "d" ? result.d : result.k
        case "adx": return TALib.adx(high: bars.high, low: bars.low, close: close, period: p[0])
        case "obv": return TALib.obv(close: close, volume: bars.volume)
        case "highest": return TALib.rollingExtreme(close, period: p[0], highest: true)
        case "lowest": return TALib.rollingExtreme(close, period: p[0], highest: false)
        case "return_mean": return ReturnWindowStatistics.mean(close, period: p[0])
        case "return_stddev": return ReturnWindowStatistics.standardDeviation(close, period: p[0])
        case "cumulative_return": return ReturnWindowStatistics.cumulativeReturn(close, period: p[0])
        case "max_drawdown": return ReturnWindowStatistics.maxDrawdown(close, period: p[0])
        default:
            // Unreachable for a normalized spec: the catalog and this switch list the same types.
            return TALib.undefined(close.count)
        }
    }
}
