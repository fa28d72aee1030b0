import BacktestCore
import BacktestModel

/// The simulation calendar and every ticker's bars aligned to it: the work a backtest does before
/// looking at a strategy, done once per (settings, snapshot) and shared read-only by every
/// variant of a batch.
///
/// Calendar: the benchmark's trading days within [start, end] (the references use SPY's).
///
/// Missing-bar policy, for a ticker without a bar on a calendar day (not yet listed, halted,
/// delisted): no order for it fills that day (a `next_open` order due then is dropped, and the
/// signal is re-evaluated on the next bar), its signals are false that day (entry and exit, so a
/// halt does not trigger an implicit exit), its price fields and indicators are undefined, and a
/// held position is valued at the ticker's last known close. Each such situation adds a warning
/// to the result naming the ticker and the dates actually usable. A ticker with data but no bar
/// at all in [start, end] never trades, with a warning; one without any data (absent from the
/// snapshot) is an error (NOT_FOUND naming the field).
package struct PreparedMarket: Sendable {
    package let settings: BacktestSettings
    package let dates: [TradingDate]
    /// Buy-and-hold benchmark equity: initial capital x close[t] / close[0] (under `raw`, when the
    /// benchmark splits or pays dividends in the window: shares following its splits, plus its
    /// dividends as cash).
    package let benchmark: [Double]
    package let benchmarkReturns: [Double]
    package let benchmarkMetrics: Metrics
    package let dataSource: String
    /// Warnings about the calendar itself (benchmark range, flat benchmark).
    package let warnings: [BacktestWarning]
    let snapshot: MarketSnapshot
    /// The benchmark's trading day before `dates[0]` when the snapshot has it: crossings on the
    /// first simulated day compare with it, so signals never depend on the start date.
    let previousDate: TradingDate?
    let aligned: [String: AlignedTicker]
    /// First trading day of each week / month (index 0 excluded: nothing is held before it).
    let weekStarts: [Bool]
    let monthStarts: [Bool]

    package init(settings: BacktestSettings, snapshot: MarketSnapshot) throws(BacktestError) {
        guard settings.start <= settings.end else {
            throw .invalidArgument(
                "end date \(settings.end) is before start date \(settings.start)", field: "settings.end_date")
        }
        guard let benchmarkBars = snapshot.bars[settings.benchmark] else {
            throw BacktestError(.notFound, "no bars for benchmark \(settings.benchmark)", field: "settings.benchmark")
        }
        let calendar = benchmarkBars.slice(settings.start...settings.end)
        guard let first = calendar.firstDate, let last = calendar.lastDate else {
            // Say what is true of the window: no trading day at all (a weekend), or where the
            // benchmark's data lies relative to it (the snapshot may stop at the window's end,
            // so its last date is not the data's end unless it is before the start).
            let available: String
            if MarketCalendar.nyse.tradingDays(in: settings.start...settings.end).isEmpty {
                available = "; the window has no trading day (weekend or market holiday)"
            } else if let dataEnd = benchmarkBars.lastDate, dataEnd < settings.start {
                available = "; its data ends \(dataEnd)"
            } else if let dataStart = benchmarkBars.firstDate, dataStart > settings.end {
                available = "; its data begins \(dataStart)"
            } else {
                available = benchmarkBars.firstDate.map { "; its data begins \($0)" } ?? ""
            }
            throw BacktestError(
                .notFound,
                "benchmark \(settings.benchmark) has no bars in \(settings.start)...\(settings.end)\(available)",
                field: "settings.start_date")
        }
        var warnings: [BacktestWarning] = []
        if first > settings.start.advanced(by: 7) || last < settings.end.advanced(by: -7) {
            warnings.append(BacktestWarning(
                .benchmarkRange, tickers: [settings.benchmark], dates: [first, last], message:
                "benchmark \(settings.benchmark) has bars only for \(first)...\(last) of the requested "
                    + "\(settings.start)...\(settings.end); simulated \(first)...\(last)"))
        }
        self.settings = settings
        self.snapshot = snapshot
        self.dataSource = snapshot.source
        dates = calendar.dates
        let firstIndex = benchmarkBars.lowerBound(first)
        previousDate = firstIndex > 0 ? benchmarkBars.dates[firstIndex - 1] : nil
        let base = calendar.close[0]
        guard base > 0, base.isFinite else {
            throw BacktestError(
                .dataLoss, "benchmark \(settings.benchmark) closes at \(base) on \(first): cannot be a base price",
                field: "settings.benchmark")
        }
        let benchmarkActions = settings.adjustment == .raw ? AlignedTicker.actions(benchmarkBars, calendar: dates) : nil
        if let benchmarkActions {
            // Prices as traded: the benchmark's shares follow its splits, dividends are cash.
            var shares = settings.initialCapital / base
            var cash = 0.0
            benchmark = calendar.close.indices.map { t in
                if t > 0 && benchmarkActions.days[t] {
                    shares *= benchmarkActions.splitRatio[t]
                    cash += shares * benchmarkActions.dividend[t]
                }
                return shares * calendar.close[t] + cash
            }
        } else {
            benchmark = calendar.close.map { settings.initialCapital * $0 / base }
        }
        benchmarkReturns = PerformanceMetrics.dailyReturns(benchmark)
        if let flat = PreparedMarket.flatBenchmarkWarning(benchmarkReturns, ticker: settings.benchmark) {
            warnings.append(flat)
        }
        self.warnings = warnings
        var aligned: [String: AlignedTicker] = [:]
        for (ticker, bars) in snapshot.bars {
            aligned[ticker] = AlignedTicker(
                bars: bars, calendar: dates, previousDate: previousDate, asTraded: settings.adjustment == .raw)
        }
        self.aligned = aligned
        weekStarts = RebalanceCalendar.days(dates, .weekly)
        monthStarts = RebalanceCalendar.days(dates, .monthly)
        benchmarkMetrics = PerformanceMetrics.compute(
            equity: benchmark, benchmarkReturns: benchmarkReturns, trades: TradeSummary.buyAndHold(benchmark),
            exposure: 1)
    }

    /// The benchmark must move: a flat benchmark (zero variance of daily returns up to rounding,
    /// see `PerformanceMetrics.negligibleDeviation`, or a single day) makes alpha, beta and every
    /// comparison meaningless, and was a bug of the old system.
    static func flatBenchmarkWarning(_ returns: [Double], ticker: String) -> BacktestWarning? {
        guard returns.count >= 1 else {
            return BacktestWarning(
                .benchmarkFlat, tickers: [ticker], message: "benchmark \(ticker) covers a single day: its returns have no variance")
        }
        let mean = returns.reduce(0, +) / Double(returns.count)
        let variance = returns.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(returns.count)
        return !PerformanceMetrics.benchmarkVarianceIsNegligible(variance) ? nil : BacktestWarning(
            .benchmarkFlat, tickers: [ticker], message: "benchmark \(ticker) is flat over the whole range (zero variance); check its data")
    }

    /// `symbol` on the calendar; NOT_FOUND naming `field` (evaluated only then) when the market
    /// holds no data for it.
    func ticker(_ symbol: String, field: @autoclosure () -> String) throws(BacktestError) -> AlignedTicker {
        guard let ticker = aligned[symbol] else {
            throw BacktestError(.notFound, "no market data for \(symbol)", field: field())
        }
        // A ticker with data but no bar in the window (listed later, delisted before) is the
        // missing-bar policy in full: it never trades, and its warning says why.
        return ticker
    }
}

/// One ticker's bars on the simulation calendar: an index per calendar day into the ticker's
/// own columns (which are shared, not copied) plus the valuation price.
struct AlignedTicker: Sendable {
    let symbol: String
    let bars: DailyBars
    /// Index into the ticker's bars for each calendar day; -1 when it has no bar that day.
    let barIndex: [Int32]
    /// Last known close on or before each calendar day (NaN before the first bar): valuation.
    let mark: [Double]
    /// Whether the ticker has a bar on each calendar day (`barIndex >= 0`).
    let hasBar: SignalBits
    let firstCalendarIndex: Int?
    let barsRange: ClosedRange<TradingDate>?
    let warnings: [BacktestWarning]
    /// Index into the ticker's bars of the calendar's previous day (`PreparedMarket.previousDate`);
    /// -1 when there is no such day or the ticker has no bar then.
    let previousBarIndex: Int

    /// Corporate actions per calendar day, for prices as traded (`raw`): nil when none falls in
    /// the calendar. Day t gathers the actions of the ticker's bars dated after day t-1 up to
    /// day t (so an ex-date the calendar lacks is not lost).
    let actions: CorporateActions?

    /// Splits and cash dividends on the calendar, as a brokerage account applies them on the
    /// ex-date before the day's trading: held shares x `splitRatio[t]`, then cash + held shares x
    /// `dividend[t]` (per share after that day's split).
    struct CorporateActions: Sendable {
        /// Product of the split ratios of day t (1: none).
        let splitRatio: [Double]
        /// Cash dividend per share on day t, in day t's share terms (0: none).
        let dividend: [Double]
        /// Days with a split or a dividend.
        let days: SignalBits
    }

    /// `asTraded`: prices are raw, so the loop applies splits and dividends itself and needs
    /// `actions`; adjusted prices contain them already (and the per-day arrays cost time).
    init(bars: DailyBars, calendar: [TradingDate], previousDate: TradingDate? = nil, asTraded: Bool = false) {
        symbol = bars.symbol
        actions = asTraded ? Self.actions(bars, calendar: calendar) : nil
        previousBarIndex = previousDate.flatMap { bars.index(of: $0) } ?? -1
        self.bars = bars
        barsRange = bars.firstDate.flatMap { first in bars.lastDate.map { first...$0 } }
        let count = calendar.count
        var barIndex = [Int32](repeating: -1, count: count)
        var mark = [Double](repeating: .nan, count: count)
        var missing: [TradingDate] = []
        var first: Int?
        var last: Int?
        // One merge pass over two sorted date lists; raw buffers keep it at a few ns per day.
        calendar.withUnsafeBufferPointer { days in
            bars.dates.withUnsafeBufferPointer { dates in
                bars.close.withUnsafeBufferPointer { barClose in
                    var j = days.first.map { bars.lowerBound($0) } ?? 0
                    var lastClose = j > 0 ? barClose[j - 1] : Double.nan
                    for t in 0..<count {
                        let date = days[t]
                        while j < dates.count && dates[j] < date {
                            lastClose = barClose[j]
                            j += 1
                        }
                        if j < dates.count && dates[j] == date {
                            barIndex[t] = Int32(j)
                            lastClose = barClose[j]
                            if first == nil { first = t }
                            last = t
                            j += 1
                        } else if first != nil {
                            missing.append(date)
                        }
                        mark[t] = lastClose
                    }
                }
            }
        }
        self.barIndex = barIndex
        self.mark = mark
        hasBar = SignalBits(barIndex.map { $0 >= 0 })
        self.firstCalendarIndex = first
        var warnings: [BacktestWarning] = []
        if first == nil, let start = calendar.first, let end = calendar.last {
            let range = barsRange.map { "its data covers \($0.lowerBound)...\($0.upperBound)" } ?? "it has no data"
            warnings.append(BacktestWarning(
                .neverTrades, tickers: [bars.symbol], dates: [start, end],
                message: "\(bars.symbol) has no bars in \(start)...\(end) (\(range)); it never trades"))
        }
        if let first, let last, let start = calendar.first, let end = calendar.last {
            let symbol = bars.symbol
            if first > 0 {
                warnings.append(BacktestWarning(
                    .startsLate, tickers: [symbol], dates: [calendar[first], start], message:
                    "\(symbol) has no bars before \(calendar[first]) (requested start \(start)); it trades only from \(calendar[first])"))
            }
            let trailing = missing.filter { $0 > calendar[last] }.count
            if last < calendar.count - 1 {
                warnings.append(BacktestWarning(
                    .endsEarly, tickers: [symbol], dates: [calendar[last], end], message:
                    "\(symbol) has no bars after \(calendar[last]) (requested end \(end)); held shares are valued at its last close"))
            }
            let gapDays = missing.filter { $0 < calendar[last] }
            let gaps = missing.count - trailing
            if gaps > 0, let firstGap = missing.first {
                warnings.append(BacktestWarning(
                    .missingBars, tickers: [symbol], dates: gapDays, message:
                    "\(symbol) has no bar on \(gaps) trading day(s) of the benchmark's calendar (first \(firstGap)); no trading on those days, valued at the last close"))
            }
        }
        self.warnings = warnings
    }

    /// `series` (aligned with the ticker's bars) on the calendar; NaN on days without a bar.
    func align(_ series: [Double]) -> [Double] {
        let count = barIndex.count
        return [Double](unsafeUninitializedCapacity: count) { out, initialized in
            barIndex.withUnsafeBufferPointer { index in
                series.withUnsafeBufferPointer { values in
                    for t in 0..<count {
                        let i = Int(index[t])
                        out[t] = i >= 0 && i < values.count ? values[i] : .nan
                    }
                }
            }
            initialized = count
        }
    }

    static func actions(_ bars: DailyBars, calendar: [TradingDate]) -> CorporateActions? {
        guard bars.hasCorporateActions, let first = calendar.first else { return nil }
        var ratio = [Double](repeating: 1, count: calendar.count)
        var dividend = [Double](repeating: 0, count: calendar.count)
        var any = false
        var t = 0
        for i in bars.lowerBound(first)..<bars.count {
            let split = bars.splitRatio[i]
            let cash = bars.dividend[i]
            guard split != 1 || cash != 0 else { continue }
            while t < calendar.count && calendar[t] < bars.dates[i] { t += 1 }
            guard t < calendar.count else { break }
            // A dividend before a split on the same calendar day is restated in post-split terms.
            dividend[t] = dividend[t] / split + cash
            ratio[t] *= split
            any = true
        }
        guard any else { return nil }
        return CorporateActions(
            splitRatio: ratio, dividend: dividend, days: SignalBits(calendar.indices.map { ratio[$0] != 1 || dividend[$0] != 0 }))
    }

    /// `series` (aligned with the ticker's bars) on the calendar's previous day; NaN when unknown.
    func previous(_ series: [Double]) -> Double {
        previousBarIndex >= 0 && previousBarIndex < series.count ? series[previousBarIndex] : .nan
    }

    /// Open (or close) on calendar day `t`; NaN when the ticker has no bar then.
    @inline(__always)
    func price(_ t: Int, open: Bool) -> Double {
        let i = Int(barIndex[t])
        guard i >= 0 else { return .nan }
        return open ? bars.open[i] : bars.close[i]
    }
}

extension BacktestWarning {
    /// One `.ordersNotFilled` warning per ticker with dropped orders (count and first day),
    /// sorted by ticker: what both engines report.
    static func ordersNotFilled(_ dropped: [String: (count: Int, first: TradingDate)]) -> [BacktestWarning] {
        dropped.sorted { $0.key < $1.key }.map {
            BacktestWarning(
                .ordersNotFilled, tickers: [$0.key], dates: [$0.value.first],
                message: "\($0.value.count) \($0.key) order(s) not filled: no bar on the fill day (first \($0.value.first))")
        }
    }
}
