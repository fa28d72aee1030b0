import BacktestCore
import BacktestModel

/// Runs one backtest; both engines conform. Implementations are stateless values, safe to share
/// across tasks.
///
/// The requirement takes a strategy that already passed `Validation.validate(_:settings:path:)`
/// and a `PreparedMarket` built once for the request's settings and snapshot (once per batch,
/// shared by every variant): the service validates each variant once and prepares the market
/// once, so engines do neither again. `run(_:settings:snapshot:indicators:)` is the stand-alone
/// form that does both (tests, benchmarks).
package protocol BacktestRunner: Sendable {
    /// "v2" or "reference", reported in `RunStatistics.engine`.
    var name: String { get }
    /// Runs `strategy`, which must have passed validation against `market.settings`.
    /// Throws NOT_FOUND naming the field when a ticker has no bars in the simulated range, and
    /// CANCELLED ("computation cancelled") soon after `cancellation` is set: implementations
    /// check it every few milliseconds of work (per position, per fill point, per day).
    /// Throws RESOURCE_EXHAUSTED (`AnswerBound.exceeded`) soon after the orders recorded so far
    /// exceed `bound`'s frame limit, checked as often as `cancellation`.
    func run(
        validated strategy: Strategy, market: PreparedMarket, indicators: IndicatorStore, cancellation: CancellationFlag?,
        bound: AnswerBound
    ) throws(BacktestError) -> BacktestResult
}

extension BacktestRunner {
    /// `run(validated:market:indicators:cancellation:bound:)` without a bound on the result.
    package func run(
        validated strategy: Strategy, market: PreparedMarket, indicators: IndicatorStore, cancellation: CancellationFlag?
    ) throws(BacktestError) -> BacktestResult {
        try run(validated: strategy, market: market, indicators: indicators, cancellation: cancellation, bound: .none)
    }

    /// `run(validated:market:indicators:cancellation:)` that cannot be cancelled.
    package func run(validated strategy: Strategy, market: PreparedMarket, indicators: IndicatorStore) throws(BacktestError) -> BacktestResult {
        try run(validated: strategy, market: market, indicators: indicators, cancellation: nil)
    }

    /// Validates `strategy` and `settings`, prepares the market from `snapshot`, and runs.
    /// Throws INVALID_ARGUMENT naming the field for an invalid request, NOT_FOUND / DATA_LOSS for
    /// a benchmark without usable bars.
    package func run(
        _ strategy: Strategy, settings: BacktestSettings, snapshot: MarketSnapshot, indicators: IndicatorStore
    ) throws(BacktestError) -> BacktestResult {
        try Validation.validate(strategy, settings: settings)
        let market = try PreparedMarket(settings: settings, snapshot: snapshot)
        return try run(validated: strategy, market: market, indicators: indicators)
    }
}

/// The v2 engine: calendar alignment shared across variants (`PreparedMarket`), indicator series
/// read from the store, every condition evaluated as a vector over the calendar, then one tight
/// portfolio loop.
package struct VectorEngine: BacktestRunner {
    package var name: String { "v2" }

    package init() {}

    /// Runs on a calendar prepared once for many variants. Validates the strategy first (for
    /// callers such as `BatchRunner` that have not).
    package func run(
        _ strategy: Strategy, market: PreparedMarket, indicators: IndicatorStore, cancellation: CancellationFlag? = nil
    ) throws(BacktestError) -> BacktestResult {
        try Validation.validate(market.settings)
        try Validation.validate(strategy, cancellation: cancellation)
        return try run(validated: strategy, market: market, indicators: indicators, cancellation: cancellation)
    }

    /// The ATR series that stop levels in ATR multiples use: Wilder's ATR(`period`) of the
    /// position's own ticker.
    static func atrOperand(_ period: Int) -> Operand {
        .series(SeriesRef(source: .indicator(IndicatorSpec(type: "atr", params: [Double(period)]))))
    }


    /// Checks `cancellation` per position while evaluating signals and per fill point in the
    /// portfolio loop (`PortfolioLoop.run`), where `bound` is checked too.
    package func run(
        validated strategy: Strategy, market: PreparedMarket, indicators: IndicatorStore, cancellation: CancellationFlag?,
        bound: AnswerBound
    ) throws(BacktestError) -> BacktestResult {
        let clock = ContinuousClock()
        let started = clock.now
        let signals = SignalVectors(market: market, indicators: indicators)
        var legs: [PortfolioLeg] = []
        legs.reserveCapacity(strategy.positions.count)
        for (p, position) in strategy.positions.enumerated() {
            try cancellation.check()
            let path = FieldPath.strategy.position(p)
            let ticker = try market.ticker(position.ticker, field: path.child("ticker").description)
            let entry = try signals.evaluate(position.entry, ticker: position.ticker, field: path.child("entry"))
            let exit = try position.exit.map { (c: Condition) throws(BacktestError) in
                try signals.evaluate(c, ticker: position.ticker, field: path.child("exit"))
            }
            let atr = try position.exits.atrPeriod.map { (period: Int) throws(BacktestError) in
                try signals.values(Self.atrOperand(period), ticker: position.ticker, field: path.child("stop_atr_period"))
            }
            legs.append(PortfolioLeg(position: position, ticker: ticker, entry: entry, exit: exit, atr: atr))
        }
        let recorder = FullRecorder(dates: market.dates, tickers: strategy.positions.map(\.ticker), bound: bound)
        var loop = PortfolioLoop(strategy: strategy, market: market, legs: legs, recorder: recorder)
        try loop.run(cancellation: cancellation)

        var warnings = market.warnings
        for symbol in StrategyAnalysis.tickers(of: strategy).sorted() {
            warnings += market.aligned[symbol]?.warnings ?? []
        }
        warnings += loop.warnings
        let equity = loop.recorder.equity
        let metrics = PerformanceMetrics.compute(
            equity: equity, benchmarkReturns: market.benchmarkReturns,
            trades: TradeSummary(closedProfits: loop.recorder.closedProfits, count: loop.tradeCount),
            exposure: Double(loop.daysExposed) / Double(max(market.dates.count, 1)))
        if let undefined = PerformanceMetrics.undefinedRatioWarning(metrics, dayCount: equity.count) { warnings.append(undefined) }
        var stats = RunStatistics()
        stats.engine = name
        stats.dataSource = market.dataSource
        stats.barsProcessed = market.dates.count * strategy.positions.count
        stats.simulationMs = (clock.now - started).milliseconds
        return BacktestResult(
            strategyName: strategy.name, dates: market.dates, equity: equity, benchmark: market.benchmark,
            orders: loop.recorder.orders, metrics: metrics, benchmarkMetrics: market.benchmarkMetrics, warnings: warnings,
            stats: stats, initialCapital: market.settings.initialCapital, benchmarkTicker: market.settings.benchmark,
            dataSource: market.dataSource)
    }
}
