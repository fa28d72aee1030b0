import BacktestModel

/// The benchmark's side of alpha and beta, computed once per calendar and shared by every
/// variant of a sweep: its daily returns, their deviations from their mean, and their
/// population variance — the same operations in the same order as
/// `PerformanceMetrics.alphaBeta`, so the results are the same to the bit.
struct BenchmarkMoments: Sendable {
    /// Daily returns of the benchmark (one fewer than calendar days).
    let returns: [Double]
    /// returns[i] - mean(returns).
    let residuals: [Double]
    /// Population variance of the returns: Σ residual² / n.
    let variance: Double
    /// No residual is infinite or NaN (so residual x 0 is ±0).
    let residualsAreFinite: Bool

    init(returns: [Double]) {
        self.returns = returns
        let n = Double(returns.count)
        let mean = returns.reduce(0, +) / n
        residuals = returns.map { $0 - mean }
        var variance = 0.0
        for residual in residuals { variance += residual * residual }
        self.variance = variance / n
        residualsAreFinite = residuals.allSatisfy(\.isFinite)
    }
}

/// `PerformanceMetrics.compute` as a `PortfolioRecorder`: the metrics of an equity curve
/// accumulated as the portfolio loop produces it, without keeping the curve.
///
/// One pass over the days gathers the sum of returns, the downside sum, the covariance with the
/// benchmark, the drawdown (peak, worst, recovery) and the round trips; only the daily returns
/// are kept, in `returns` (a buffer of the caller's, reused across variants), for the two sums
/// that need the mean or beta first: the squared deviations (volatility, Sharpe) and alpha's
/// residual sum. Each sum adds the same terms in the same order as `PerformanceMetrics`, so the
/// metrics equal those of the full result to the bit (a test checks it).
struct MetricAccumulator: PortfolioRecorder {
    let benchmark: BenchmarkMoments
    /// At least (calendar days - 1) values; overwritten.
    let returns: UnsafeMutableBufferPointer<Double>

    /// Days recorded so far.
    private(set) var dayCount = 0
    private(set) var first = 0.0
    private(set) var last = 0.0
    private(set) var orderCount = 0
    private var sum = 0.0
    private var downside = 0.0
    private var covariance = 0.0
    // Drawdown, as in PerformanceMetrics.maxDrawdown.
    private var peak = 0.0
    /// Day of `peak`.
    private var peakIndex = 0
    private var worst = 0.0
    private var worstPeakIndex = 0
    private var worstPeak = 0.0
    /// First day on or after the worst day with equity >= the worst drawdown's peak (-1: none).
    private var recovery = -1
    // Round trips.
    private var closedCount = 0
    private var winCount = 0
    private var grossProfit = 0.0
    private var lossSum = 0.0

    init(benchmark: BenchmarkMoments, returns: UnsafeMutableBufferPointer<Double>) {
        self.benchmark = benchmark
        self.returns = returns
    }

    @inline(__always)
    mutating func days(_ range: Range<Int>, equity: (Int) -> Double) {
        precondition(range.lowerBound == dayCount, "days recorded out of order")
        guard !range.isEmpty else { return }
        var start = range.lowerBound
        if start == 0 {
            let value = equity(0)
            first = value
            last = value
            peak = value
            worstPeak = value
            // Day 0 against its own peak, as PerformanceMetrics.maxDrawdown does.
            let drawdown = value / peak - 1
            if drawdown < worst {
                worst = drawdown
                worstPeakIndex = 0
                recovery = value >= worstPeak ? 0 : -1
            } else if recovery < 0 && value >= worstPeak {
                recovery = 0
            }
            start = 1
        }
        // The state in locals for the loop (registers, not memory), written back after it.
        var last = self.last, sum = self.sum, downside = self.downside, covariance = self.covariance
        var peak = self.peak, peakIndex = self.peakIndex, worst = self.worst
        var worstPeakIndex = self.worstPeakIndex, worstPeak = self.worstPeak, recovery = self.recovery
        let returns = self.returns
        benchmark.residuals.withUnsafeBufferPointer { residuals in
            for t in start..<range.upperBound {
                let value = equity(t)
                let r = value / last - 1
                returns[t - 1] = r
                sum += r
                if r < 0 { downside += r * r }
                covariance += residuals[t - 1] * r
                last = value
                if value >= peak {
                    peak = value
                    peakIndex = t
                }
                let drawdown = value / peak - 1
                if drawdown < worst {
                    worst = drawdown
                    worstPeakIndex = peakIndex
                    worstPeak = peak
                    recovery = value >= worstPeak ? t : -1
                } else if recovery < 0 && value >= worstPeak {
                    recovery = t
                }
            }
        }
        self.last = last
        self.sum = sum
        self.downside = downside
        self.covariance = covariance
        self.peak = peak
        self.peakIndex = peakIndex
        self.worst = worst
        self.worstPeakIndex = worstPeakIndex
        self.worstPeak = worstPeak
        self.recovery = recovery
        dayCount = range.upperBound
    }

    /// The first day in full; each further day has the same equity as the day before, so its
    /// return is exactly 0 (for a finite, non-zero equity), which changes none of the sums
    /// (none of them is ever -0, so adding ±0 leaves it as it is, given finite benchmark
    /// residuals) and leaves the drawdown state where the first day put it. Only the returns
    /// buffer is written.
    mutating func flatDays(_ range: Range<Int>, equity value: Double) {
        guard !range.isEmpty else { return }
        days(range.lowerBound..<range.lowerBound + 1) { _ in value }
        let rest = range.lowerBound + 1..<range.upperBound
        guard !rest.isEmpty else { return }
        if value.isFinite && value != 0 && benchmark.residualsAreFinite {
            UnsafeMutableBufferPointer(rebasing: returns[rest.lowerBound - 1..<rest.upperBound - 1]).update(repeating: 0)
            // A flat run at the high moves the drawdown's peak to its last day (the peak is the
            // last day at the high), as `days` would have done day by day.
            if value >= peak { peakIndex = rest.upperBound - 1 }
            dayCount = rest.upperBound
        } else {
            days(rest) { _ in value }
        }
    }

    mutating func order(leg: Int, day t: Int, side: OrderSide, quantity: Double, price: Double, commission: Double, reason: OrderReason) {
        orderCount += 1
    }

    mutating func closedTrade(profit: Double) {
        closedCount += 1
        if profit > 0 {
            winCount += 1
            grossProfit += profit
        } else if profit < 0 {
            lossSum += profit
        }
    }

    /// The metrics of the days recorded so far, as `PerformanceMetrics.compute` gives them for
    /// the same equity curve, `tradeCount` closed round trips and `exposure`.
    func metrics(tradeCount: Int, exposure: Double) -> Metrics {
        var metrics = Metrics()
        guard dayCount > 0, first != 0 else { return metrics }
        let n = Double(dayCount - 1)
        metrics.totalReturn = last / first - 1
        metrics.tradeCount = tradeCount
        metrics.exposure = exposure
        (metrics.winRate, metrics.profitFactor) = PerformanceMetrics.tradeRatios(
            closed: closedCount, wins: winCount, grossProfit: grossProfit, grossLoss: -lossSum)
        let drawdown = worst < 0 ? worst : 0
        metrics.maxDrawdown = drawdown
        if worst < 0 {
            metrics.maxDrawdownDuration = (recovery >= 0 ? recovery : dayCount - 1) - worstPeakIndex
        }
        guard n > 0 else { return PerformanceMetrics.undefinedReturnStatistics(metrics) }

        let growth = last / first
        metrics.cagr = growth > 0 ? pow(growth, PerformanceMetrics.periodsPerYear / n) - 1 : -1
        let mean = sum / n
        let count = dayCount - 1
        // Beta needs only the first pass (the covariance), so the second pass over the returns
        // sums the squared deviations and alpha's residuals together, each in day order.
        let benchmarkVariance = benchmark.variance
        let hasBeta = count == benchmark.returns.count && !PerformanceMetrics.benchmarkVarianceIsNegligible(benchmarkVariance)
        let beta = hasBeta ? covariance / n / benchmarkVariance : 0
        var squares = 0.0
        var alphaSum = 0.0
        let returns = self.returns
        benchmark.returns.withUnsafeBufferPointer { b in
            if hasBeta {
                for i in 0..<count {
                    let r = returns[i]
                    squares += (r - mean) * (r - mean)
                    alphaSum += r - beta * b[i]
                }
            } else {
                for i in 0..<count {
                    let r = returns[i]
                    squares += (r - mean) * (r - mean)
                }
            }
        }
        (metrics.volatility, metrics.sharpe) = PerformanceMetrics.volatilityAndSharpe(squares: squares, mean: mean, n: n)
        metrics.sortino = PerformanceMetrics.sortino(downside: downside, mean: mean, n: n)
        metrics.calmar = PerformanceMetrics.calmar(cagr: metrics.cagr, drawdown: drawdown)
        metrics.alpha = .nan
        metrics.beta = .nan
        if hasBeta {
            // empyrical alpha_beta_aligned, risk-free 0, as PerformanceMetrics.alphaBeta.
            metrics.alpha = pow(alphaSum / n + 1, PerformanceMetrics.periodsPerYear) - 1
            metrics.beta = beta
        }
        return metrics
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
