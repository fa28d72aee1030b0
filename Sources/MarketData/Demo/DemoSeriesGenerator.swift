import BacktestCore
import Foundation

/// Generates realistic-looking raw daily bars for any symbol, deterministically from a seed.
///
/// The model, per trading day of the calendar from the epoch:
/// - a market factor: log return = drift + σₜ·z, where σₜ follows a GARCH(1,1)
///   (σ²ₜ = ω + α·ε²ₜ₋₁ + β·σ²ₜ₋₁, α = 0.08, β = 0.90, long-run 1.1 %/day) and z is normal with
///   occasional fat-tailed days, so calm and turbulent periods alternate as in real markets;
/// - each symbol: its own drift + beta × market + its own GARCH noise. SPY is the market with
///   a beta of 1 and little noise; other symbols draw a beta in [0.6, 1.6] and a noise level from
///   their own stream, so they correlate with SPY without copying it;
/// - OHLC around the close with an overnight gap, rounded to cents (rounding is monotonic, so
///   low ≤ open, close ≤ high survives it), and volume that rises on big moves;
/// - corporate actions reported as a vendor would: quarterly cash dividends for about half of
///   the symbols (and SPY), a 2:1 or 3:1 split when the price climbs past a per-symbol level,
///   a 1:10 reverse split when it sinks below $2. Raw prices jump on ex-dates exactly as traded
///   prices do, so `DailyBars.adjusted` has real work to do.
///
/// Every value depends only on (seed, symbol, date): series are always generated from the epoch.
struct DemoSeriesGenerator: Sendable {
    let seed: UInt64
    let tradingDays: [TradingDate]

    /// Log returns of the market factor, one per trading day.
    func marketReturns() -> [Double] {
        var random = SplitMix64(seed: seed, stream: "market-factor")
        var process = GarchProcess(longRunVolatility: 0.011, random: &random)
        return tradingDays.map { _ in 0.00028 + process.next(&random) }
    }

    func series(_ symbol: String, market: [Double]) -> DailyBars {
        var random = SplitMix64(seed: seed, stream: "symbol:" + symbol)
        let isMarket = symbol == "SPY"
        let beta = isMarket ? 1.0 : random.uniform(0.6, 1.6)
        let noiseVolatility = isMarket ? 0.0012 : random.uniform(0.008, 0.022)
        let alpha = isMarket ? 0.0 : random.uniform(-0.0002, 0.0003)
        var price = isMarket ? 146.0 : Foundation.exp(random.uniform(Foundation.log(15), Foundation.log(150)))
        let paysDividends = isMarket || random.unit() < 0.5
        let annualYield = isMarket ? 0.017 : random.uniform(0.006, 0.035)
        let dividendPhase = Int(random.next() % 63)
        let splitLevel = isMarket ? Double.infinity : random.uniform(250, 600)
        var sharesPerUnitVolume = Foundation.exp(random.uniform(Foundation.log(2e6), Foundation.log(6e7)))
        var noise = GarchProcess(longRunVolatility: noiseVolatility, random: &random)

        var bars = DailyBars(symbol: symbol)
        bars.reserveCapacity(tradingDays.count)
        var pendingSplit = 1.0
        var lastSplitIndex = -1_000
        for (index, date) in tradingDays.enumerated() {
            let split = pendingSplit
            pendingSplit = 1
            var dividend = 0.0
            if paysDividends, index > 0, index % 63 == dividendPhase {
                dividend = max(0.01, ((price / split) * annualYield / 4 * 100).rounded() / 100)
            }
            // The reference price after the ex-date actions: what the previous close is worth now.
            let basis = max(0.01, price / split - dividend)
            let dayReturn = alpha + beta * market[index] + noise.next(&random)
            let dayVolatility = max(0.004, abs(dayReturn))
            let gap = dayReturn * random.uniform(0.1, 0.5) + random.normal() * 0.2 * dayVolatility
            let close = basis * Foundation.exp(dayReturn)
            let open = basis * Foundation.exp(gap)
            let high = max(open, close) * Foundation.exp(abs(random.normal()) * 0.45 * dayVolatility + 0.002)
            let low = min(open, close) * Foundation.exp(-abs(random.normal()) * 0.45 * dayVolatility - 0.002)
            sharesPerUnitVolume *= split
            let volume = sharesPerUnitVolume * Foundation.exp(0.25 * random.normal()) * (1 + 25 * abs(dayReturn))
            bars.append(
                date: date, open: cents(open), high: cents(high), low: cents(low), close: cents(close),
                volume: volume.rounded(), dividend: dividend, splitRatio: split)
            price = cents(close)
            if index - lastSplitIndex > 250 {
                if price > splitLevel {
                    pendingSplit = price > 1.6 * splitLevel ? 3 : 2
                    lastSplitIndex = index
                } else if price < 2 {
                    pendingSplit = 0.1
                    lastSplitIndex = index
                }
            }
        }
        return bars
    }

    private func cents(_ value: Double) -> Double {
        max(0.01, (value * 100).rounded() / 100)
    }
}

/// GARCH(1,1) shocks: variance reacts to yesterday's shock and decays back to its long-run level.
struct GarchProcess {
    private let omega: Double
    private let alpha = 0.08
    private let beta = 0.90
    private var variance: Double
    private var lastShock = 0.0

    init(longRunVolatility: Double, random: inout SplitMix64) {
        let longRunVariance = longRunVolatility * longRunVolatility
        omega = longRunVariance * (1 - alpha - beta)
        variance = longRunVariance * random.uniform(0.6, 1.6)
    }

    mutating func next(_ random: inout SplitMix64) -> Double {
        variance = omega + alpha * lastShock * lastShock + beta * variance
        var z = random.normal()
        if random.unit() < 0.02 { z *= 2.5 }  // occasional fat-tailed days
        lastShock = variance.squareRoot() * z
        return lastShock
    }
}
