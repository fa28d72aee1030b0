import BacktestCore
import BacktestModel
/// Round trips of a backtest, for the trade-based metrics.
package struct TradeSummary: Sendable, Hashable {
    /// Profit or loss of each closed round trip (entry to full exit), net of commissions.
    package var closedProfits: [Double] = []
    /// Closed round trips (a position still open at the end is not one).
    package var count = 0

    package init(closedProfits: [Double] = [], count: Int = 0) {
        self.closedProfits = closedProfits
        self.count = count
    }

    /// The benchmark's buy-and-hold: one position opened on the first day and never closed, so
    /// no closed round trip (win rate and profit factor undefined, trade count 0).
    static func buyAndHold(_ equity: [Double]) -> TradeSummary {
        TradeSummary()
    }
}

/// Metrics with empyrical 0.7's conventions: simple daily returns of the equity curve, 252
/// periods a year, risk-free rate 0.
///
/// - total return: final / initial - 1. CAGR (empyrical annual_return): (1 + total return)
///   ^ (252 / number of daily returns) - 1.
/// - volatility: sample stddev (ddof 1) of daily returns x sqrt(252); Sharpe: mean / sample
///   stddev x sqrt(252); Sortino: mean x 252 / (sqrt(mean(min(r, 0)²)) x sqrt(252)).
/// - max drawdown: most negative (equity / running peak - 1); its duration (pyfolio's
///   convention): trading days from that drawdown's peak — the *last* day at the high before
///   the trough, so days spent exactly at the high are not drawdown — to the first day back at
///   or above the high (to the last day when not recovered). Calmar: CAGR / |max drawdown|.
/// - beta: population covariance with the benchmark's daily returns / their population variance;
///   alpha: (1 + mean(r - beta x r_benchmark)) ^ 252 - 1.
/// - win rate and profit factor over closed round trips; trade count = closed round trips (a
///   position still open at the end is not counted); exposure = fraction of days ending with a
///   position held.
///
/// Undefined values are NaN (absent: JSON null, "-" in tables), never an invented number:
/// win rate and profit factor without a closed round trip (profit factor also when every closed
/// trade broke even; with winners but no loser it is +infinity); volatility and Sharpe with
/// fewer than two daily returns; Sharpe when the returns' standard deviation is zero up to
/// rounding (`negligibleDeviation`; volatility is then 0); Sortino without downside (same
/// threshold); Calmar without a drawdown; alpha and beta when the benchmark's returns have no
/// variance (same threshold) or do not line up. `undefinedRatioWarning` says which and why.
package enum PerformanceMetrics {
    package static let periodsPerYear = 252.0

    /// A standard deviation of daily returns (or a downside deviation) at or below this is zero
    /// up to rounding: returns computed as equity[t] / equity[t-1] - 1 carry errors of about
    /// 1e-16, and a real price tick moves a daily return by more than 1e-8.
    package static let negligibleDeviation = 1e-12

    package static func dailyReturns(_ equity: [Double]) -> [Double] {
        guard equity.count > 1 else { return [] }
        var returns = [Double](repeating: 0, count: equity.count - 1)
        for t in 1..<equity.count { returns[t - 1] = equity[t] / equity[t - 1] - 1 }
        return returns
    }

    package static func compute(equity: [Double], benchmarkReturns: [Double], trades: TradeSummary, exposure: Double) -> Metrics {
        var metrics = Metrics()
        guard let first = equity.first, let last = equity.last, first != 0 else { return metrics }
        let returns = dailyReturns(equity)
        let n = Double(returns.count)
        metrics.totalReturn = last / first - 1
        metrics.tradeCount = trades.count
        metrics.exposure = exposure
        let wins = trades.closedProfits.filter { $0 > 0 }
        let losses = trades.closedProfits.filter { $0 < 0 }
        let grossProfit = wins.reduce(0, +)
        let grossLoss = -losses.reduce(0, +)
        (metrics.winRate, metrics.profitFactor) = tradeRatios(
            closed: trades.closedProfits.count, wins: wins.count, grossProfit: grossProfit, grossLoss: grossLoss)
        let (drawdown, duration) = maxDrawdown(equity)
        metrics.maxDrawdown = drawdown
        metrics.maxDrawdownDuration = duration
        guard n > 0 else { return undefinedReturnStatistics(metrics) }

        let growth = last / first
        metrics.cagr = growth > 0 ? pow(growth, periodsPerYear / n) - 1 : -1
        let mean = returns.reduce(0, +) / n
        var squares = 0.0
        var downside = 0.0
        for r in returns {
            squares += (r - mean) * (r - mean)
            if r < 0 { downside += r * r }
        }
        (metrics.volatility, metrics.sharpe) = volatilityAndSharpe(squares: squares, mean: mean, n: n)
        metrics.sortino = sortino(downside: downside, mean: mean, n: n)
        metrics.calmar = calmar(cagr: metrics.cagr, drawdown: drawdown)
        (metrics.alpha, metrics.beta) = alphaBeta(returns, benchmarkReturns)
        return metrics
    }

    /// `metrics` with every statistic of daily returns undefined (a single day: no return).
    static func undefinedReturnStatistics(_ metrics: Metrics) -> Metrics {
        var metrics = metrics
        metrics.cagr = .nan
        metrics.volatility = .nan
        metrics.sharpe = .nan
        metrics.sortino = .nan
        metrics.calmar = .nan
        metrics.alpha = .nan
        metrics.beta = .nan
        return metrics
    }

    /// Win rate and profit factor of `closed` round trips (NaN when undefined, see the type).
    static func tradeRatios(closed: Int, wins: Int, grossProfit: Double, grossLoss: Double) -> (Double, Double) {
        guard closed > 0 else { return (.nan, .nan) }
        let winRate = Double(wins) / Double(closed)
        let profitFactor = grossLoss > 0 ? grossProfit / grossLoss : (grossProfit > 0 ? .infinity : .nan)
        return (winRate, profitFactor)
    }

    /// Annualised volatility and Sharpe from the sum of squared deviations of `n` returns.
    static func volatilityAndSharpe(squares: Double, mean: Double, n: Double) -> (Double, Double) {
        guard n > 1 else { return (.nan, .nan) }
        let stddev = (squares / (n - 1)).squareRoot()
        guard stddev > negligibleDeviation else { return (0, .nan) }
        return (stddev * periodsPerYear.squareRoot(), mean / stddev * periodsPerYear.squareRoot())
    }

    /// Sortino from the sum of squared negative returns of `n` returns.
    static func sortino(downside: Double, mean: Double, n: Double) -> Double {
        let deviation = (downside / n).squareRoot()
        guard deviation > negligibleDeviation else { return .nan }
        return mean * periodsPerYear / (deviation * periodsPerYear.squareRoot())
    }

    static func calmar(cagr: Double, drawdown: Double) -> Double {
        drawdown < -negligibleDeviation ? cagr / -drawdown : .nan
    }

    /// Whether a benchmark's population variance of daily returns is zero up to rounding.
    static func benchmarkVarianceIsNegligible(_ variance: Double) -> Bool {
        !(variance > negligibleDeviation * negligibleDeviation)
    }

    /// The one warning naming the undefined ratios of `metrics` (Sharpe, Sortino, Calmar,
    /// alpha/beta) and why; nil when all are defined or there are fewer than two daily returns.
    // Warning (plain string, to become a typed BacktestWarning at merge): undefined ratios.
    package static func undefinedRatioWarning(_ metrics: Metrics, dayCount: Int) -> BacktestWarning? {
        guard dayCount > 2 else { return nil }
        var reasons: [String] = []
        if metrics.sharpe.isNaN { reasons.append("sharpe (the daily returns have no variance)") }
        if metrics.sortino.isNaN { reasons.append("sortino (no negative daily return)") }
        if metrics.calmar.isNaN { reasons.append("calmar (no drawdown)") }
        if metrics.beta.isNaN { reasons.append("alpha and beta (the benchmark's daily returns have no variance)") }
        guard !reasons.isEmpty else { return nil }
        return BacktestWarning(.metricsUndefined, message: "undefined metrics, reported as absent: " + reasons.joined(separator: ", "))
    }

    /// empyrical alpha_beta_aligned with risk-free 0.
    static func alphaBeta(_ returns: [Double], _ benchmark: [Double]) -> (alpha: Double, beta: Double) {
        guard returns.count == benchmark.count, !returns.isEmpty else { return (.nan, .nan) }
        let n = Double(returns.count)
        let benchmarkMean = benchmark.reduce(0, +) / n
        var covariance = 0.0
        var variance = 0.0
        for i in 0..<returns.count {
            let residual = benchmark[i] - benchmarkMean
            covariance += residual * returns[i]
            variance += residual * residual
        }
        covariance /= n
        variance /= n
        guard !benchmarkVarianceIsNegligible(variance) else { return (.nan, .nan) }
        let beta = covariance / variance
        var alphaSum = 0.0
        for i in 0..<returns.count { alphaSum += returns[i] - beta * benchmark[i] }
        let alpha = pow(alphaSum / n + 1, periodsPerYear) - 1
        return (alpha, beta)
    }

    /// The most negative equity / running peak - 1 (0 when never below a peak), and the trading
    /// days from that drawdown's peak (the last day at the high before the trough) to its
    /// recovery (the first day back at or above the high; or the last day).
    static func maxDrawdown(_ equity: [Double]) -> (Double, Int) {
        guard var peak = equity.first else { return (0, 0) }
        var peakIndex = 0
        var worst = 0.0
        var worstPeakIndex = 0
        var worstPeak = peak
        var worstIndex = 0
        for (t, value) in equity.enumerated() {
            if value >= peak {
                peak = value
                peakIndex = t
            }
            let drawdown = value / peak - 1
            if drawdown < worst {
                worst = drawdown
                worstPeakIndex = peakIndex
                worstPeak = peak
                worstIndex = t
            }
        }
        guard worst < 0 else { return (0, 0) }
        var recovery = equity.count - 1
        for t in worstIndex..<equity.count where equity[t] >= worstPeak {
            recovery = t
            break
        }
        return (worst, recovery - worstPeakIndex)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
