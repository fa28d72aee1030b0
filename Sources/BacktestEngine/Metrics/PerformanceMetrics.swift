import BacktestModel
/// Round trips of a backtest, for the trade-based metrics.
public struct TradeSummary: Sendable, Hashable {
    /// Profit or loss of each closed round trip (entry to full exit), net of commissions.
    public var closedProfits: [Double] = []
    /// Round trips opened, including one still open at the end.
    public var count = 0

    public init(closedProfits: [Double] = [], count: Int = 0) {
        self.closedProfits = closedProfits
        self.count = count
    }

    /// The benchmark as one round trip, closed at the last close.
    static func buyAndHold(_ equity: [Double]) -> TradeSummary {
        guard let first = equity.first, let last = equity.last else { return TradeSummary() }
        return TradeSummary(closedProfits: [last - first], count: 1)
    }
}

/// Metrics with empyrical 0.7's conventions: simple daily returns of the equity curve, 252
/// periods a year, risk-free rate 0.
///
/// - total return: final / initial - 1. CAGR (empyrical annual_return): (1 + total return)
///   ^ (252 / number of daily returns) - 1.
/// - volatility: sample stddev (ddof 1) of daily returns x sqrt(252); Sharpe: mean / sample
///   stddev x sqrt(252); Sortino: mean x 252 / (sqrt(mean(min(r, 0)²)) x sqrt(252)).
/// - max drawdown: most negative (equity / running peak - 1); its duration: trading days from
///   that drawdown's peak to recovery (to the last day when not recovered). Calmar: CAGR / |max
///   drawdown|.
/// - beta: population covariance with the benchmark's daily returns / their population variance;
///   alpha: (1 + mean(r - beta x r_benchmark)) ^ 252 - 1.
/// - win rate and profit factor over closed round trips; trade count = round trips opened;
///   exposure = fraction of days ending with a position held.
///
/// Undefined ratios (zero volatility, no downside, no drawdown, flat benchmark, no closed trade)
/// are reported as 0; a profit factor without a losing trade but with a winning one is +infinity.
public enum PerformanceMetrics {
    public static let periodsPerYear = 252.0

    public static func dailyReturns(_ equity: [Double]) -> [Double] {
        guard equity.count > 1 else { return [] }
        var returns = [Double](repeating: 0, count: equity.count - 1)
        for t in 1..<equity.count { returns[t - 1] = equity[t] / equity[t - 1] - 1 }
        return returns
    }

    public static func compute(equity: [Double], benchmarkReturns: [Double], trades: TradeSummary, exposure: Double) -> Metrics {
        var metrics = Metrics()
        guard let first = equity.first, let last = equity.last, first != 0 else { return metrics }
        let returns = dailyReturns(equity)
        let n = Double(returns.count)
        metrics.totalReturn = last / first - 1
        metrics.tradeCount = trades.count
        metrics.exposure = exposure
        let wins = trades.closedProfits.filter { $0 > 0 }
        let losses = trades.closedProfits.filter { $0 < 0 }
        if !trades.closedProfits.isEmpty {
            metrics.winRate = Double(wins.count) / Double(trades.closedProfits.count)
        }
        let grossProfit = wins.reduce(0, +)
        let grossLoss = -losses.reduce(0, +)
        metrics.profitFactor = grossLoss > 0 ? grossProfit / grossLoss : (grossProfit > 0 ? .infinity : 0)
        let (drawdown, duration) = maxDrawdown(equity)
        metrics.maxDrawdown = drawdown
        metrics.maxDrawdownDuration = duration
        guard n > 0 else { return metrics }

        let growth = last / first
        metrics.cagr = growth > 0 ? pow(growth, periodsPerYear / n) - 1 : -1
        let mean = returns.reduce(0, +) / n
        var squares = 0.0
        var downside = 0.0
        for r in returns {
            squares += (r - mean) * (r - mean)
            if r < 0 { downside += r * r }
        }
        if n > 1 {
            let stddev = (squares / (n - 1)).squareRoot()
            metrics.volatility = stddev * periodsPerYear.squareRoot()
            metrics.sharpe = stddev > 0 ? mean / stddev * periodsPerYear.squareRoot() : 0
        }
        let downsideRisk = (downside / n).squareRoot() * periodsPerYear.squareRoot()
        metrics.sortino = downsideRisk > 0 ? mean * periodsPerYear / downsideRisk : 0
        metrics.calmar = drawdown < 0 ? metrics.cagr / -drawdown : 0
        (metrics.alpha, metrics.beta) = alphaBeta(returns, benchmarkReturns)
        return metrics
    }

    /// empyrical alpha_beta_aligned with risk-free 0.
    static func alphaBeta(_ returns: [Double], _ benchmark: [Double]) -> (alpha: Double, beta: Double) {
        guard returns.count == benchmark.count, !returns.isEmpty else { return (0, 0) }
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
        guard variance > 0 else { return (0, 0) }
        let beta = covariance / variance
        var alphaSum = 0.0
        for i in 0..<returns.count { alphaSum += returns[i] - beta * benchmark[i] }
        let alpha = pow(alphaSum / n + 1, periodsPerYear) - 1
        return (alpha, beta)
    }

    /// The most negative equity / running peak - 1 (0 when never below a peak), and the trading
    /// days from that drawdown's peak to its recovery (or to the last day).
    static func maxDrawdown(_ equity: [Double]) -> (Double, Int) {
        guard var peak = equity.first else { return (0, 0) }
        var peakIndex = 0
        var worst = 0.0
        var worstPeakIndex = 0
        var worstPeak = peak
        var worstIndex = 0
        for (t, value) in equity.enumerated() {
            if value > peak {
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
