import BacktestCore
import BacktestModel

/// The oracle: a deliberately plain day-by-day loop that recomputes every indicator value it
/// needs from the ticker's bars up to that day, walks the condition tree per bar and looks bars
/// up by date. No store, no alignment arrays, no vectors: slow (quadratic in history) but
/// obviously right, so the v2 engine can be checked against it (the differential test) and
/// requests can fall back to it (`EngineSelection`).
///
/// It shares with v2 only what is not simulation: validation, the calendar and its warnings
/// (`PreparedMarket`), and the metric formulas.
package struct ReferenceEngine: BacktestRunner {
    package var name: String { "reference" }

    package init() {}

    /// Checks `cancellation` once per position and day, and `bound` once per day (the orders
    /// of the days before, added up as they are encoded).
    package func run(
        validated strategy: Strategy, market: PreparedMarket, indicators _: IndicatorStore, cancellation: CancellationFlag?,
        bound: AnswerBound
    ) throws(BacktestError) -> BacktestResult {
        let clock = ContinuousClock()
        let started = clock.now
        let settings = market.settings
        let snapshot = market.snapshot
        var warnings = market.warnings
        for (p, position) in strategy.positions.enumerated() {
            _ = try market.ticker(position.ticker, field: FieldPath.strategy.position(p).child("ticker").description)
        }
        for symbol in StrategyAnalysis.tickers(of: strategy).sorted() {
            let path = StrategyAnalysis.firstPath(of: symbol, in: strategy) ?? FieldPath.strategy.child("positions")
            _ = try market.ticker(symbol, field: path.description)
            warnings += market.aligned[symbol]?.warnings ?? []
        }
        var book = ReferenceBook(strategy: strategy, snapshot: snapshot, dates: market.dates, capital: settings.initialCapital)
        let evaluator = ReferenceConditions(snapshot: snapshot, dates: market.dates, previousDate: market.previousDate)
        let dates = market.dates
        var equity: [Double] = []
        var exposedDays = 0
        var orderBytes = OrderBytesTally(bound)
        for t in 0..<dates.count {
            try cancellation.check()
            try orderBytes.check(adding: book.orders)
            if settings.adjustment == .raw { book.applyCorporateActions(day: t) }
            book.priceAndTimeExits(day: t, useOpen: strategy.fill == .nextOpen)
            let signalDay: Int? = strategy.fill == .close ? t : (t > 0 ? t - 1 : nil)
            if let s = signalDay {
                var wantsExit: [Bool] = []
                var wantsEntry: [Bool] = []
                for position in strategy.positions {
                    try cancellation.check()
                    let (entry, exit) = evaluator.signals(position, day: s)
                    wantsEntry.append(entry)
                    wantsExit.append(exit)
                }
                book.trade(day: t, useOpen: strategy.fill == .nextOpen, exits: wantsExit, entries: wantsEntry) { p in
                    let position = strategy.positions[p]
                    guard let period = position.exits.atrPeriod else { return .nan }
                    return evaluator.value(VectorEngine.atrOperand(period), ticker: position.ticker, day: s)
                }
            }
            equity.append(book.value(day: t, useOpen: false))
            if book.isExposed { exposedDays += 1 }
        }
        try orderBytes.check(adding: book.orders)
        warnings += book.warnings
        if strategy.fill == .nextOpen, let last = dates.indices.last {
            var unfilled: [String] = []
            for (p, position) in strategy.positions.enumerated() {
                let (entry, exit) = evaluator.signals(position, day: last)
                if book.holdings[p].shares != 0 ? exit : entry { unfilled.append(position.ticker) }
            }
            warnings += PortfolioLoop<FullRecorder>.unfilledAtEndWarning(unfilled, lastDay: dates.last)
        }
        let metrics = PerformanceMetrics.compute(
            equity: equity, benchmarkReturns: market.benchmarkReturns, trades: book.trades,
            exposure: Double(exposedDays) / Double(max(dates.count, 1)))
        if let undefined = PerformanceMetrics.undefinedRatioWarning(metrics, dayCount: equity.count) { warnings.append(undefined) }
        var stats = RunStatistics()
        stats.engine = name
        stats.dataSource = snapshot.source
        stats.barsProcessed = dates.count * strategy.positions.count
        stats.simulationMs = (clock.now - started).milliseconds
        return BacktestResult(
            strategyName: strategy.name, dates: dates, equity: equity, benchmark: market.benchmark, orders: book.orders,
            metrics: metrics, benchmarkMetrics: market.benchmarkMetrics, warnings: warnings, stats: stats,
            initialCapital: settings.initialCapital, benchmarkTicker: settings.benchmark, dataSource: snapshot.source)
    }
}

/// Conditions evaluated one day at a time by walking the tree.
struct ReferenceConditions {
    let snapshot: MarketSnapshot
    let dates: [TradingDate]
    /// The benchmark's trading day before `dates[0]` (day -1), if known.
    let previousDate: TradingDate?

    /// The date of calendar day `day`; day -1 is `previousDate`.
    func date(_ day: Int) -> TradingDate? {
        day >= 0 ? dates[day] : previousDate
    }

    /// (entry, exit) signals of `position` on calendar day `day`, after the missing-bar rule (no
    /// bar: no signal) and the conflict rule (entry and exit both true: neither).
    func signals(_ position: Position, day: Int) -> (entry: Bool, exit: Bool) {
        guard snapshot.bars[position.ticker]?.index(of: dates[day]) != nil else { return (false, false) }
        let entry = holds(position.entry, ticker: position.ticker, day: day)
        let exit = position.exit.map { holds($0, ticker: position.ticker, day: day) } ?? !entry
        return (entry && !exit, exit && !entry)
    }

    func holds(_ condition: Condition, ticker: String, day: Int) -> Bool {
        switch condition {
        case .all(let members): return members.allSatisfy { holds($0, ticker: ticker, day: day) }
        case .any(let members): return members.contains { holds($0, ticker: ticker, day: day) }
        case .not(let inner): return !holds(inner, ticker: ticker, day: day)
        case .compare(let lhs, let op, let rhs):
            let l = value(lhs, ticker: ticker, day: day)
            let r = value(rhs, ticker: ticker, day: day)
            switch op {
            case .greater: return l > r
            case .greaterOrEqual: return l >= r
            case .less: return l < r
            case .lessOrEqual: return l <= r
            case .crossesAbove, .crossesBelow:
                let lPrevious = value(lhs, ticker: ticker, day: day - 1)
                let rPrevious = value(rhs, ticker: ticker, day: day - 1)
                return op == .crossesAbove ? (l > r && lPrevious <= rPrevious) : (l < r && lPrevious >= rPrevious)
            }
        }
    }

    /// The operand on `day` (day -1: the trading day before the calendar): NaN when its ticker
    /// has no bar that day or the indicator is not yet defined. Indicators are recomputed from
    /// the first bar up to `day`, every time.
    func value(_ operand: Operand, ticker: String, day: Int) -> Double {
        switch operand {
        case .number(let value): return value
        case .series(let series):
            let symbol = series.ticker ?? ticker
            guard let date = date(day), let bars = snapshot.bars[symbol], let i = bars.index(of: date) else { return .nan }
            switch series.source {
            case .field(.open): return bars.open[i]
            case .field(.high): return bars.high[i]
            case .field(.low): return bars.low[i]
            case .field(.close): return bars.close[i]
            case .field(.volume): return bars.volume[i]
            case .indicator(let spec):
                let history = bars.slice(indices: 0..<(i + 1))
                return (try? IndicatorCalculator.compute(spec, bars: history).last) ?? .nan
            }
        }
    }
}
