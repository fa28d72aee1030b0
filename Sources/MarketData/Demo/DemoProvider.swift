import BacktestCore
import Foundation
import Logging
import Synchronization

/// Synthetic daily bars for any symbol, with no network and no keys: what the README's first
/// command runs on. Deterministic for a (seed, symbol, date); see `DemoSeriesGenerator` for the
/// model. Every answer carries a warning that says the prices are synthetic, and the provider's
/// name ("demo") is reported with results.
///
/// Series run over the market calendar's trading days from 2000-01-03 to `endDate()` (today in
/// New York by default) and are generated from the epoch whatever the query, then adjusted over
/// their whole length and sliced, so a value never depends on the range asked for.
package final class DemoProvider: MarketDataProvider {
    package let name = "demo"
    /// The seed decides every price.
    package var cacheIdentity: String { "demo|\(seed)" }
    package let dataEpoch = TradingDate(year: 2000, month: 1, day: 3)!
    package let seed: UInt64

    private let endDate: @Sendable () -> TradingDate
    private let calendar: MarketCalendar
    private let logger: Logger
    private let state = Mutex<State>(State())

    private struct State {
        var end: TradingDate?
        var generator: DemoSeriesGenerator?
        var market: [Double] = []
        var series: [String: [PriceAdjustment: DailyBars]] = [:]
        var announced = false
    }

    package static let defaultSeed: UInt64 = 20_000_103

    package init(
        seed: UInt64 = DemoProvider.defaultSeed,
        endDate: @escaping @Sendable () -> TradingDate = { NewYorkTime.date(unixSeconds: Int64(Date().timeIntervalSince1970)) },
        calendar: MarketCalendar = .nyse, logger: Logger = Logger(label: "backtestd.marketdata.demo")
    ) {
        self.seed = seed
        self.endDate = endDate
        self.calendar = calendar
        self.logger = logger
    }

    package var label: String { "demo data: synthetic prices (seed \(seed)), not real market data" }

    package var standingWarnings: [BacktestWarning] { [BacktestWarning(.demoData, message: label)] }

    package func dailyBars(_ query: BarQuery) async throws -> BarSet {
        for symbol in query.symbols { try Ticker.validate(symbol, field: "symbols") }
        var result = BarSet(warnings: standingWarnings)
        for symbol in query.symbols {
            let bars = history(symbol, query.adjustment)
            try bars?.validate(origin: "demo data")
            result.add(symbol, history: bars, range: query.range, calendar: calendar)
        }
        result.normalize()
        return result
    }

    /// The whole generated series of `symbol`, adjusted; nil when the end is before the epoch.
    func history(_ symbol: String, _ adjustment: PriceAdjustment) -> DailyBars? {
        let end = endDate()
        guard end >= dataEpoch else { return nil }
        let (generator, market, cachedRaw, cached) = state.withLock { state in
            if !state.announced {
                state.announced = true
                logger.notice("market data: \(label)")
            }
            if state.end != end {  // a new day: start over (the prefix comes out the same)
                let generator = DemoSeriesGenerator(seed: seed, tradingDays: calendar.tradingDays(in: dataEpoch...end))
                state = State(end: end, generator: generator, market: generator.marketReturns(), announced: true)
            }
            let series = state.series[symbol]
            return (state.generator!, state.market, series?[.raw], series?[adjustment])
        }
        if let cached { return cached }
        let raw = cachedRaw ?? generator.series(symbol, market: market)
        let adjusted = raw.adjusted(adjustment)
        state.withLock { state in
            guard state.end == end else { return }
            state.series[symbol, default: [:]][.raw] = raw
            state.series[symbol, default: [:]][adjustment] = adjusted
        }
        return adjusted
    }
}
