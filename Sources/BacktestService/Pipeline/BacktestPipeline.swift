import BacktestCache
import BacktestCore
import BacktestEngine
import BacktestModel
import Foundation
import Logging
import MarketData

/// The one path every backtest takes: validation → analysis → data → indicators → market →
/// simulation. A single backtest is a batch of one (`runBacktest` calls `execute` with one
/// strategy), so both calls share every step:
///
/// - `validate` checks each strategy once (an invalid one becomes its own error; the others go on)
///   and marks the valid ones `ValidatedVariant`, the only input the later steps accept;
/// - `prepare` runs the shared phase once for all of them: the union of tickers and unique
///   indicator series, one data query to the (cached, coalesced) source, the indicator series
///   from the indicator cache or computed and stored, inside one scoped cache session; and the
///   `PreparedMarket` (calendar alignment), built once and shared by every simulation;
/// - `simulate` runs one validated strategy on the prepared data; it is synchronous, CPU-bound
///   and safe to run in parallel. `execute` runs it on `computeThreads`, never on Swift's
///   cooperative pool, so a long batch does not starve the process's other tasks.
package struct BacktestPipeline: Sendable {
    /// The market-data source behind the cache (coalescing, batched).
    package let source: any MarketDataProvider
    /// nil when the server runs without Redis.
    package let cache: MarketDataCache?
    package let engines: EngineSelection
    package let logger: Logger
    /// Told of every validation, shared phase and cache session (tests count them).
    package let observer: (any PipelineObserver)?
    /// Where simulations run: threads of their own, not Swift's cooperative pool (see
    /// `ComputeThreads`).
    package let computeThreads: ComputeThreads
    /// The bound on every full result's orders (the server's frame limit, issue 12): a
    /// simulation whose orders alone cannot fit in an answer stops with RESOURCE_EXHAUSTED.
    /// `.none` (the default) for tools and tests that keep results in process.
    package let answerBound: AnswerBound
    let cachedSource: CachedMarketData?
    private let indicatorCache: IndicatorCache?

    package init(
        source: any MarketDataProvider, cache: MarketDataCache?, engines: EngineSelection = EngineSelection(),
        logger: Logger = Logger(label: "backtestd.pipeline"), observer: (any PipelineObserver)? = nil,
        computeThreads: ComputeThreads = .shared, answerBound: AnswerBound = .none
    ) {
        self.source = source
        self.answerBound = answerBound
        self.computeThreads = computeThreads
        self.cache = cache
        self.engines = engines
        self.logger = logger
        self.observer = observer
        cachedSource = cache.map { CachedMarketData(upstream: source, cache: $0) }
        indicatorCache = cache.map { IndicatorCache(cache: $0) }
    }

    /// One backtest, start to finish, with its run statistics and one log line: a batch of one
    /// through `execute`, its field paths under `run_backtest`. Throws the variant's error (e.g.
    /// INVALID_ARGUMENT naming "run_backtest.strategy.positions[0].weight") or the shared phase's.
    package func runBacktest(_ strategy: Strategy, settings: BacktestSettings) async throws(BacktestError) -> BacktestResult {
        let started = ContinuousClock.now
        var outcome: Result<BacktestResult, BacktestError>?
        let batch: RunStatistics?
        do {
            batch = try await execute(
                [strategy], settings: settings, parallelism: 1, label: "backtest '\(LogText(strategy.name))'", paths: .runBacktest,
                rejected: { outcome = $0.outcome }, finished: { outcome = $0.outcome })
        } catch {
            throw BacktestPipeline.callError(error)
        }
        guard let outcome else { throw BacktestError(.internal, "the backtest ended without a result") }
        var result = try outcome.get()
        // The batch's simulation time includes the one calendar alignment (`PreparedMarket`).
        if let batch { result.stats.simulationMs = batch.simulationMs }
        result.stats.totalMs = (ContinuousClock.now - started).milliseconds
        logger.info("\(PerformanceLine(label: "backtest '\(LogText(strategy.name))'", stats: result.stats))")
        return result
    }

    /// The shared execution of one backtest or one batch: validates every strategy once (each
    /// invalid one is passed to `rejected` at once), runs the shared phase once for the valid ones,
    /// then simulates them with at most `parallelism` at a time in a task group, each on
    /// `computeThreads` (the calling task only waits), passing each to
    /// `finished` as it ends (one at a time, from this task) and the number still running to
    /// `running` after each start.
    ///
    /// `paths` places every error's field in the call (`CallPaths`: "run_backtest.strategy…",
    /// "run_batch.variants[i]…", "run_batch.settings…"). The simulations' warnings are logged
    /// once, as one line headed by `label` (see `WarningTally`; client data in `label` must be
    /// wrapped in `LogText`). Returns the shared phase's statistics with the simulations' time
    /// (the calendar alignment included) and bars, or nil when no strategy was valid.
    /// Throws the shared phase's `BacktestError`, what the callbacks throw, or
    /// `CancellationError` when the task is cancelled between simulations.
    package func execute(
        _ strategies: [Strategy], settings: BacktestSettings, parallelism: Int,
        label: String = "batch",
        paths: CallPaths,
        invalid: [Int: BacktestError] = [:],
        running: (Int) async -> Void = { _ in },
        rejected: (VariantResult) async throws -> Void,
        finished: (VariantResult) async throws -> Void
    ) async throws -> RunStatistics? {
        var valid: [ValidatedVariant] = []
        // Validation is CPU work that grows with the request (a strategy may have 100,000
        // positions): large ones run on the compute threads (`cpuWork`). It checks a flag that
        // this task's cancellation sets.
        let (outcomes, cancelled) = try await cpuWork(positions: Self.positionCount(strategies)) { [self] flag in
            validate(strategies, settings: settings, paths: paths, invalid: invalid, cancellation: flag)
        }
        if cancelled { throw CancellationError() }
        for outcome in outcomes {
            switch outcome {
            case .success(let variant): valid.append(variant)
            case .failure(let rejection): try await rejected(VariantResult(index: rejection.index, outcome: .failure(rejection.error)))
            }
        }
        guard !valid.isEmpty else { return nil }
        // Every variant here ends as a FULL result, `parallelism` of them built at once.
        let prepared = try await prepare(valid, settings: settings, fullResultsAtOnce: min(valid.count, parallelism))
        var simulationMs = prepared.marketMs
        var barsProcessed = 0
        let warnings = WarningTally()
        defer { warnings.log(to: logger, label: label) }
        try await withThrowingTaskGroup(of: VariantResult.self) { group in
            var next = 0
            var active = 0
            func startNext() {
                guard next < valid.count else { return }
                let variant = valid[next]
                // After the first round, a variant waits for a thread with parked work: the
                // batch has had turns (`ComputeThreads`).
                let continuing = next >= max(1, parallelism)
                next += 1
                active += 1
                group.addTask {
                    // On a compute thread: the simulation is CPU-bound and may take seconds, and
                    // the cooperative pool (a thread per core) must stay free for other calls'
                    // tasks. A variant not started yet never starts after a cancel; the running
                    // one sees its flag within milliseconds and ends CANCELLED.
                    let outcome = try await computeThreads.run(continuing: continuing, cancellable: { cancellation in
                        Result { () throws(BacktestError) in
                            try simulate(variant, in: prepared, warnings: warnings, cancellation: cancellation)
                        }
                    })
                    if case .failure(let error) = outcome, error.code == .cancelled { throw CancellationError() }
                    return VariantResult(index: variant.index, outcome: outcome)
                }
            }
            for _ in 0..<min(max(1, parallelism), valid.count) { startNext() }
            await running(active)
            // Results are handed on here, one at a time, so counts stream in order.
            while let result = try await group.next() {
                active -= 1
                if case .success(let backtest) = result.outcome {
                    simulationMs += backtest.stats.simulationMs
                    barsProcessed += backtest.stats.barsProcessed
                }
                try await finished(result)
                startNext()
                await running(active)
            }
        }
        var stats = prepared.stats
        stats.simulationMs = simulationMs
        stats.barsProcessed = barsProcessed
        return stats
    }

    /// Validates `settings` once and each strategy once, in order: the valid ones as
    /// `ValidatedVariant`, the others with their INVALID_ARGUMENT naming the field placed by
    /// `paths`. Invalid settings reject every strategy with the settings' error. Strategies in
    /// `invalid` (those the wire decoder could not decode, `BatchRequest.invalidVariants`) are
    /// rejected with their own error, exactly as one failing validation.
    /// Stops validating (CANCELLED for the rest) once `cancellation` is set.
    package func validate(
        _ strategies: [Strategy], settings: BacktestSettings, paths: CallPaths, invalid: [Int: BacktestError] = [:], cancellation: CancellationFlag? = nil
    ) -> [Result<ValidatedVariant, Rejection>] {
        var settingsError: BacktestError?
        do throws(BacktestError) { try Validation.validate(settings, path: paths.settings) } catch { settingsError = error }
        return strategies.enumerated().map { index, strategy in
            if let error = invalid[index] { return .failure(Rejection(index: index, error: error)) }
            if let settingsError { return .failure(Rejection(index: index, error: settingsError)) }
            let field = paths.strategy(index)
            do throws(BacktestError) {
                try Validation.validate(strategy, path: field, cancellation: cancellation)
                try Validation.validateCashSizing(strategy, settings: settings, path: field)
            } catch {
                return .failure(Rejection(index: index, error: error))
            }
            observer?.validated(variant: index)
            return .success(ValidatedVariant(index: index, strategy: strategy, path: field, settingsPath: paths.settings, settings: settings))
        }
    }

    /// A grid's analysis strategies (`GridPlan.analysisStrategy`: the base, then one per axis
    /// value) validated one at a time, in order, on `computeThreads` for more than
    /// `offloadPositions` of them. Throws the first invalid one's error placed on its axis value
    /// (`CallPaths.gridValueError`), CANCELLED when the call is cancelled.
    ///
    /// Each is checked at the cost of what its value changes (`GridPlan.analysisChange`): the
    /// base in full, then for a field of the strategy that field, for one position that position
    /// and the sums across positions (from the base's, the whole strategy checked again only when
    /// they come near their limit, for the exact error). A sixth tester's 1,000 zipped weight
    /// axes over a 1,000-position base checked every position of 1,000,000 strategies (48 s).
    ///
    /// Returns the base and, per value that reads a ticker or indicator series nothing before it
    /// read, the positions that do (`ValidatedVariant.basePositions`): the shared phase needs only
    /// the union of what they read, so a 700,000-value weight axis keeps the base alone and an
    /// axis of 1,000 entry conditions over a 100,000-position base keeps one position per value,
    /// not 1,000 copies of the base.
    package func validate(grid: GridPlan, settings: BacktestSettings) async throws(BacktestError) -> [ValidatedVariant] {
        let outcome: Result<[ValidatedVariant], BacktestError>
        do {
            outcome = try await cpuWork(offload: grid.analysisCount + grid.grid.base.positions.count > Self.offloadPositions) { [self] flag in
                Result { () throws(BacktestError) in try validate(grid: grid, settings: settings, cancellation: flag) }
            }.value
        } catch {
            throw BacktestError(.cancelled, "computation cancelled")
        }
        return try outcome.get()
    }

    private func validate(grid: GridPlan, settings: BacktestSettings, cancellation: CancellationFlag) throws(BacktestError) -> [ValidatedVariant] {
        let paths = CallPaths.gridAnalysis(valueCounts: grid.valueCounts)
        try Validation.validate(settings, path: paths.settings)
        let base = try grid.analysisStrategy(0)
        var tickers: Set<String> = []
        var keys: Set<IndicatorKey> = []
        var baseTotals = (weight: 0.0, cash: 0.0)
        var distinct: [ValidatedVariant] = []
        func variant(_ index: Int, _ strategy: Strategy, basePositions: [Int]? = nil) -> ValidatedVariant {
            ValidatedVariant(index: index, strategy: strategy, path: paths.strategy(index), settingsPath: paths.settings,
                             settings: settings, basePositions: basePositions)
        }
        // Whether sums across positions are clear of their limits (by a margin that rounding in
        // another order cannot cross); else the whole strategy is checked, which decides exactly.
        func clear(_ totals: (weight: Double, cash: Double), leverage: Bool) -> Bool {
            leverage || (totals.weight <= 1 - 1e-6 && totals.cash <= settings.initialCapital * (1 - 1e-9))
        }
        func checkWhole(_ strategy: Strategy, _ field: FieldPath) throws(BacktestError) {
            try Validation.validate(strategy, path: field, cancellation: cancellation)
            try Validation.validateCashSizing(strategy, settings: settings, path: field)
        }
        for index in 0..<grid.analysisCount {
            try cancellation.check()
            let field = paths.strategy(index)
            do throws(BacktestError) {
                switch try grid.analysisChange(index) {
                case .base:
                    // The base as sent: its JSON form, which the variants are built from,
                    // upper-cases tickers (for the CLI's files), and a request's must be upper
                    // case (a grid ran `aapl`).
                    try Validation.validate(grid.grid.base, path: field, cancellation: cancellation)
                    try checkWhole(base, field)
                    for (p, position) in base.positions.enumerated() {
                        try cancellation.check()
                        _ = try StrategyAnalysis.collect(position, at: p, root: field, tickers: &tickers, keys: &keys)
                        let totals = Validation.totals(position)
                        baseTotals = (baseTotals.weight + totals.weight, baseTotals.cash + totals.cash)
                    }
                    distinct.append(variant(index, base))
                case .fields(let strategy):
                    try Validation.validateFields(strategy, path: field)
                    if !clear(baseTotals, leverage: strategy.allowLeverage) { try checkWhole(strategy, field) }
                case .position(let p, let position):
                    try Validation.validate(position, at: p, path: field)
                    let (old, new) = (Validation.totals(base.positions[p]), Validation.totals(position))
                    let totals = (baseTotals.weight - old.weight + new.weight, baseTotals.cash - old.cash + new.cash)
                    if !clear(totals, leverage: base.allowLeverage) { try checkWhole(try grid.analysisStrategy(index), field) }
                    if try StrategyAnalysis.collect(position, at: p, root: field, tickers: &tickers, keys: &keys) {
                        var strategy = base
                        strategy.positions = [position]
                        distinct.append(variant(index, strategy, basePositions: [p]))
                    }
                case .whole(let strategy):
                    try checkWhole(strategy, field)
                    var added: [Int] = []
                    for (p, position) in strategy.positions.enumerated() {
                        try cancellation.check()
                        if try StrategyAnalysis.collect(position, at: p, root: field, tickers: &tickers, keys: &keys) { added.append(p) }
                    }
                    if !added.isEmpty {
                        var reading = strategy
                        reading.positions = added.map { strategy.positions[$0] }
                        distinct.append(variant(index, reading, basePositions: added))
                    }
                }
                observer?.validated(variant: index)
            } catch {
                throw paths.gridValueError(error)
            }
        }
        return distinct
    }

    /// Positions of all `strategies` together, the measure of a call's validation and analysis
    /// work that `cpuWork` goes by.
    static func positionCount(_ strategies: [Strategy]) -> Int {
        strategies.reduce(0) { $0 + $1.positions.count }
    }

    /// Above this many positions in a call, validation and analysis run on `computeThreads`
    /// instead of the calling task. Why: a 40,000-position request takes ~200 ms of them, and the
    /// calling task runs on Swift's cooperative pool (a thread per core, shared by every call's
    /// tasks), where it would stall every other connection's calls; on the compute threads it is
    /// time-sliced and admitted fairly. Small calls (microseconds of work) stay on their task:
    /// a trip through the compute queue would cost them more than the work.
    static let offloadPositions = 1_000

    /// Runs `work` with a cancellation flag that this task's cancellation sets, on
    /// `computeThreads` when the call has more than `offloadPositions` positions, else on this
    /// task. Returns its value and whether the flag was set. Throws `CancellationError` when the
    /// task is cancelled before `work` started on a compute thread.
    func cpuWork<Value: Sendable>(
        positions: Int, _ work: @escaping @Sendable (CancellationFlag) -> Value
    ) async throws -> (value: Value, cancelled: Bool) {
        try await cpuWork(offload: positions > Self.offloadPositions, work)
    }

    /// Runs `work` with a cancellation flag that this task's cancellation sets, on
    /// `computeThreads` when `offload`, else on this task. Returns its value and whether the
    /// flag was set. Throws `CancellationError` when the task is cancelled before `work` started
    /// on a compute thread.
    func cpuWork<Value: Sendable>(
        offload: Bool, _ work: @escaping @Sendable (CancellationFlag) -> Value
    ) async throws -> (value: Value, cancelled: Bool) {
        if offload {
            return try await computeThreads.run(cancellable: { flag in (work(flag), flag.isCancelled) })
        }
        let flag = CancellationFlag()
        let value = await withTaskCancellationHandler { work(flag) } onCancel: { flag.cancel() }
        return (value, flag.isCancelled)
    }

    /// Runs `body`, a `cpuWork` call of the shared phase (analysis, indicators), with the shared
    /// phase's errors: a `BacktestError` as it is, anything else (`CancellationError` when the
    /// task was cancelled before the work started on a compute thread, the compute threads' own
    /// errors after their shutdown) as CANCELLED "computation cancelled". The one place that maps
    /// them; validation (`execute`) calls `cpuWork` directly because it wants the
    /// `CancellationError` itself.
    private static func sharedPhase<Value>(_ body: () async throws -> Value) async throws(BacktestError) -> Value {
        do {
            return try await body()
        } catch let error as BacktestError {
            throw error
        } catch {
            throw BacktestError(.cancelled, "computation cancelled")
        }
    }

    /// The shared phase for `variants` (validated against `settings`): analysis, one data query,
    /// indicators, inside one cache session scoped to this call, then the `PreparedMarket` once.
    /// `fullResultsAtOnce`: how many FULL results (with their orders) the call builds at a time,
    /// for its memory reservation (0 for a sweep that keeps summaries).
    /// Throws what the analysis or the data layer throws (the field under the variant's path).
    package func prepare(_ variants: [ValidatedVariant], settings: BacktestSettings,
                         fullResultsAtOnce: Int = 0) async throws(BacktestError) -> PreparedBatch {
        let clock = ContinuousClock()
        var stats = RunStatistics()
        stats.engine = engines.useNewEngine ? engines.primary.name : engines.fallback.name
        stats.dataSource = source.name

        // Analysis: the union of tickers and unique indicator series.
        var phase = clock.now
        let strategies = variants.map(\.strategy)
        let paths = variants.map(\.path)
        let analysis = try await Self.sharedPhase {
            try await cpuWork(positions: Self.positionCount(strategies)) { flag in
                Result { () throws(BacktestError) in
                    try StrategyAnalysis(strategies: strategies, settings: settings, fieldPrefix: { paths[$0] }, cancellation: flag)
                }
            }
        }.value.get()
        stats.indicatorSeries = analysis.indicatorKeys.count
        stats.analysisMs = (clock.now - phase).milliseconds

        // What the call will hold, from its analysis, reserved from the server's budget before
        // the indicators are computed (`RequestMemoryBudget`); an ordinary call's is far below
        // the size that counts and never waits.
        let range = min(source.dataEpoch, settings.start)...settings.end
        let days = Self.tradingDays(range.lowerBound, range.upperBound)
        let analysisBytes = Self.memoryEstimate(series: analysis.indicatorKeys.count, positions: Self.positionCount(strategies), days: days)
        // A FULL result is built whole in memory (its orders, then their encoding): a backtest's
        // one, a batch's or GetVariantResults' few at a time (a tester's 40 connections x 8
        // batches of 16 daily-rebalanced variants reached 5.6 GB, none of it reserved).
        let answerBytes = fullResultsAtOnce > 0
            ? Self.answerEstimate(positions: strategies.map(\.positions.count).max() ?? 0,
                                  days: Self.tradingDays(settings.start, settings.end), frameLimit: answerBound.frameLimit)
            : 0
        // A documented cap with a clear error rather than a call that holds the server's memory
        // alone for as long as it runs: on its indicator series, which are held whole for the
        // call (a batch's variants' positions are simulated a few at a time, so the positions'
        // part of the estimate is not held at once). Indicators are computed from the data
        // epoch, so the series' length is not the client's to shorten: their number is.
        let seriesBytes = Self.memoryEstimate(series: analysis.indicatorKeys.count, positions: 0, days: days)
        if let reservation = RequestMemoryBudget.current, seriesBytes >= RequestMemoryBudget.analysisThreshold,
           seriesBytes > reservation.maxPerCall {
            throw BacktestError(
                .resourceExhausted,
                "this call needs about \(seriesBytes >> 20) MB for its \(analysis.indicatorKeys.count) distinct indicator series over \(days) trading days (from the data epoch); a call may hold at most \(reservation.maxPerCall >> 20) MB of them (\(RequestMemoryBudget.maxPerCallFactor) x --request-memory-mb): use fewer distinct indicator parameters",
                field: (variants.count == 1 ? variants[0].path : FieldPath("run_batch")).description)
        }
        do {
            if RequestMemoryBudget.counts(analysisBytes: analysisBytes, answerBytes: answerBytes) {
                let answers = answerBytes.multipliedReportingOverflow(by: fullResultsAtOnce)
                try await RequestMemoryBudget.current?.grow(to: answers.overflow ? .max : analysisBytes &+ answers.partialValue)
            }
        } catch {
            throw BacktestError(.cancelled, "computation cancelled")
        }

        // Data and indicators, in one cache session that ends with this scope however it ends.
        let query = BarQuery(symbols: analysis.tickers, range: range, adjustment: settings.adjustment)
        var dataMs = 0.0
        let (loaded, cacheStats) = try await withCacheSession { session throws(BacktestError) in
            // Data: one query for every ticker, from the data epoch so indicators are canonical.
            phase = clock.now
            let bars: BarSet
            do {
                bars = try await dailyBars(query, session: session)
            } catch {
                throw BacktestPipeline.dataError(
                    error, strategies: variants.map(\.strategy), settings: settings, fieldPrefix: { variants[$0].path },
                    settingsPath: variants.first?.settingsPath ?? .settings)
            }
            // Tickers without a bar in the range may still exist (listed later, delisted earlier):
            // those get their data outside the window, so the engine applies the missing-bar
            // policy (the position never trades, a warning says why) instead of failing the
            // portfolio. Tickers the source has no data for at all stay absent: NOT_FOUND, as a
            // typo should be.
            var snapshotBars = bars.bars
            var extraAPICalls = 0
            var missing = bars.missing
            let positionTickers = Set(variants.flatMap { $0.strategy.positions.map(\.ticker) })
            let unlisted = missing.filter { positionTickers.contains($0) && $0 != settings.benchmark }
            if !unlisted.isEmpty {
                let today = NewYorkTime.date(unixSeconds: Int64(Date().timeIntervalSince1970))
                let wide = BarQuery(symbols: unlisted, range: source.dataEpoch...max(today, settings.end), adjustment: settings.adjustment)
                if let found = try? await source.dailyBars(wide) {
                    for (symbol, history) in found.bars where !history.isEmpty {
                        snapshotBars[symbol] = history
                        missing.removeAll { $0 == symbol }
                    }
                    extraAPICalls = found.apiCalls
                }
            }
            let snapshot = MarketSnapshot(bars: snapshotBars, source: source.name)
            dataMs = (clock.now - phase).milliseconds
            // Indicators: from the cache where possible, computed (and stored) otherwise.
            phase = clock.now
            let indicators = try await computeIndicators(analysis.indicatorKeys, snapshot: snapshot, settings: settings, session: session)
            return (bars, snapshot, indicators, missing, extraAPICalls)
        }
        let (bars, snapshot, indicators, missing, extraAPICalls) = loaded
        stats.dataMs = dataMs
        stats.indicatorsMs = (clock.now - phase).milliseconds
        if let cacheStats {
            stats.cacheHits = cacheStats.hits
            stats.cacheMisses = cacheStats.misses
            stats.apiCalls = max(cacheStats.apiCalls, bars.apiCalls) + extraAPICalls
        } else {
            stats.apiCalls = bars.apiCalls + extraAPICalls
        }
        // The data layer's listing warnings are measured from the query's start (the source's
        // epoch, for indicators), not the window's; the engine says the same fact relative to the
        // window ("X has no bars before D (requested start S)"), so only its warning is kept.
        var warnings = bars.warnings.filter { warning in
            !analysis.tickers.contains { BarSet.isListingWarning(warning, of: $0) }
        }
        if let warmUp = Self.warmUpWarning(indicators, snapshot: snapshot, start: settings.start, source: source) {
            warnings.append(warmUp)
            logger.notice("\(LogText(warmUp.description, limit: LogText.messageLimit))")
        }
        if !missing.isEmpty {
            warnings.append(BacktestWarning(
                .noData, tickers: missing, dates: [range.lowerBound, range.upperBound],
                message: "no data from \(source.name) for \(missing.joined(separator: ", ")) in \(range.lowerBound)...\(range.upperBound)"))
        }

        // The calendar, aligned once for every variant. Its error (e.g. no benchmark bars) is each
        // variant's own answer, as it was when each simulation aligned its own.
        phase = clock.now
        let market = Result { () throws(BacktestError) in try PreparedMarket(settings: settings, snapshot: snapshot) }
        observer?.preparedMarket()
        let marketMs = (clock.now - phase).milliseconds
        return PreparedBatch(
            settings: settings, snapshot: snapshot, indicators: indicators, market: market, marketMs: marketMs,
            stats: stats, warnings: warnings)
    }

    /// Runs one validated strategy on prepared data (v2 engine, or the reference engine as
    /// configured) and merges the shared phase's statistics and warnings into its result. The
    /// engine's warnings are counted in `warnings`, which the caller logs once for all variants
    /// (`execute` does; the default tally is not logged).
    /// Throws the market's error (NOT_FOUND, DATA_LOSS about the benchmark), NOT_FOUND naming
    /// where the variant reads a ticker the data layer has no data for at all, or the engine's,
    /// CANCELLED soon after `cancellation` is set, and RESOURCE_EXHAUSTED soon after the
    /// result's orders outgrow `answerBound` (that variant alone; its memory is then given back
    /// to the system, `MemoryReturn`).
    package func simulate(
        _ variant: ValidatedVariant, in prepared: PreparedBatch, warnings: WarningTally = WarningTally(),
        cancellation: CancellationFlag? = nil
    ) throws(BacktestError) -> BacktestResult {
        var result: BacktestResult
        do throws(BacktestError) {
            let market = try prepared.market.get()
            // A ticker with no data at all fails this variant alone, naming where it reads it.
            if let unknown = StrategyAnalysis.unknownTickerError(
                in: variant.strategy, root: variant.path, hasData: { prepared.snapshot.bars[$0] != nil }) {
                throw unknown
            }
            result = try engines.run(
                validated: variant.strategy, market: market, indicators: prepared.indicators, cancellation: cancellation,
                bound: answerBound)
        } catch {
            if error.code == .resourceExhausted { MemoryReturn.soon() }
            // The engine names fields under `strategy` / `settings`: place them in the call.
            throw error.rerooted(strategy: variant.path, settings: variant.settingsPath)
        }
        warnings.note(result.warnings)
        let simulation = result.stats
        result.stats = prepared.stats
        result.stats.engine = simulation.engine
        result.stats.simulationMs = simulation.simulationMs
        result.stats.barsProcessed = simulation.barsProcessed
        result.stats.totalMs = prepared.stats.analysisMs + prepared.stats.dataMs + prepared.stats.indicatorsMs + simulation.simulationMs
        // Each fact once, in the order first said.
        var seen = Set<BacktestWarning>()
        result.warnings = (prepared.warnings + result.warnings).filter { seen.insert($0).inserted }
        return result
    }

    /// The bars of `query`: through the cache when there is a session, else from the source.
    /// Throws the source's or the cache's error (see `dataError` for what a call answers).
    func dailyBars(_ query: BarQuery, session: CacheSession?) async throws -> BarSet {
        if let cachedSource, let session { return try await cachedSource.dailyBars(query, session: session) }
        return try await source.dailyBars(query)
    }

    /// Runs `body` in a cache session (nil without a cache) that is finished whether `body`
    /// returns or throws; returns the session's counts with the value.
    func withCacheSession<Value>(
        _ body: (CacheSession?) async throws(BacktestError) -> Value
    ) async throws(BacktestError) -> (Value, CacheStatistics?) {
        guard let cache else { return (try await body(nil), nil) }
        observer?.cacheSession(opened: true)
        defer { observer?.cacheSession(opened: false) }
        let (value, statistics) = try await cache.withSession { session throws(BacktestError) in try await body(session) }
        return (value, statistics)
    }

    func computeIndicators(
        _ keys: [IndicatorKey], snapshot: MarketSnapshot, settings: BacktestSettings, session: CacheSession?
    ) async throws(BacktestError) -> IndicatorStore {
        var store = IndicatorStore()
        // What the cache does not have is computed in one piece of CPU work (`compute`), then
        // stored. Keys whose ticker has no bars are left out: `simulate` fails only the variants
        // that read them (NOT_FOUND naming the field).
        var missing: [(key: IndicatorKey, bars: DailyBars, cacheKey: IndicatorCacheKey?)] = []
        for key in keys {
            if Task.isCancelled { throw BacktestError(.cancelled, "computation cancelled") }
            guard let bars = snapshot.bars[key.ticker], let first = bars.firstDate, let last = bars.lastDate else { continue }
            guard let indicatorCache, let session else {
                missing.append((key, bars, nil))
                continue
            }
            let cacheKey = IndicatorCacheKey(
                ticker: try Ticker(validating: key.ticker, field: "ticker"), indicator: key.spec.canonicalKey, adjustment: settings.adjustment,
                source: source.name, from: first, through: last)
            if let values = await indicatorCache.get(cacheKey, expectedCount: bars.count, session: session) {
                store.insert(values, for: key)
            } else {
                missing.append((key, bars, cacheKey))
            }
        }
        guard !missing.isEmpty else { return store }
        let computed = try await compute(missing.map { ($0.key, $0.bars) })
        for (entry, values) in zip(missing, computed) {
            store.insert(values, for: entry.key)
            if let indicatorCache, let session, let cacheKey = entry.cacheKey {
                await indicatorCache.put(cacheKey, values: values, session: session)
            }
        }
        return store
    }

    /// Bytes a call will hold, from its analysis: 24 a value of each indicator series over `days`
    /// (the series, the cache's encoding of it, the calculator's work) and per position its
    /// signals (two bit vectors and a leg, about `days` / 4 + 400). For the server's request
    /// memory budget (`RequestMemoryBudget.Reservation.grow(to:)`); an estimate, not a bound.
    package static func memoryEstimate(series: Int, positions: Int, days: Int) -> Int {
        let days = max(1, days)
        return series.multipliedReportingOverflow(by: days * 24).partialValue &+ positions &* (days / 4 + 400)
    }

    /// Trading days from `start` through `end`, estimated from the calendar (252 a year), for the
    /// memory estimates: no calendar is loaded before the data.
    package static func tradingDays(_ start: TradingDate, _ end: TradingDate) -> Int {
        start.distance(to: end) * 252 / 365 + 1
    }

    /// Bytes one FULL result (a backtest's answer, a batch variant's) may hold while it is built, at most: one order per
    /// position per simulated day (a daily rebalance's worst case), 40 bytes each encoded, up to
    /// the frame limit (the engine stops a result whose orders outgrow it, `AnswerBound`), held
    /// about three times over (the orders, their protobuf-c messages, the encoded bytes).
    /// Measured: 20 daily-rebalanced positions over 25 years give a 3.5 MB answer and hold about
    /// 7.7 MB each while built (40 at once, release build). An upper bound for the answer, so a
    /// client cannot make many calls each just under `RequestMemoryBudget.answerThreshold` hold
    /// more: signal-driven strategies trade far less than this says.
    package static func answerEstimate(positions: Int, days: Int, frameLimit: Int?) -> Int {
        let orders = positions.multipliedReportingOverflow(by: max(1, days))
        let encoded = orders.partialValue.multipliedReportingOverflow(by: 40)
        let bytes = orders.overflow || encoded.overflow ? Int.max : encoded.partialValue
        return min(bytes, frameLimit ?? Int.max / 3) * 3
    }

    /// Bar-series values (days times series) above which indicators are computed on
    /// `computeThreads` rather than the calling task (Swift's cooperative pool): 2,500 distinct
    /// SMA periods over 20 years kept light calls of other connections waiting 100+ ms there (a
    /// tester's measurement). A few series (the usual call) stay on the task.
    static let offloadIndicatorValues = 100_000

    /// The series of `work`, in order; on `computeThreads` (time-sliced, checking for
    /// cancellation between series) when they are many. Throws CANCELLED when the call is.
    private func compute(_ work: [(IndicatorKey, DailyBars)]) async throws(BacktestError) -> [[Double]] {
        let size = work.reduce(0) { $0 + $1.1.count }
        let (values, cancelled) = try await Self.sharedPhase {
            try await cpuWork(offload: size > Self.offloadIndicatorValues) { flag in
                var values: [[Double]] = []
                values.reserveCapacity(work.count)
                for (key, bars) in work {
                    if (try? flag.check()) == nil { break }
                    values.append(IndicatorCalculator.compute(key, bars: bars))
                }
                return values
            }
        }
        guard !cancelled, values.count == work.count else { throw BacktestError(.cancelled, "computation cancelled") }
        return values
    }

    /// What the call answers for an error out of `execute`: a `BacktestError` as it is, a
    /// cancellation as CANCELLED.
    static func callError(_ error: any Error) -> BacktestError {
        if let error = error as? BacktestError { return error }
        if error is CancellationError { return BacktestError(.cancelled, "backtest cancelled") }
        return BacktestError(.internal, "backtest failed", cause: error)
    }

    /// Errors from the data layer as the client should see them.
    ///
    /// A ticker the source rejects (reported with field `symbols`) is reported with the path of
    /// the first position trading it, or of the benchmark, so the client sees which field to fix.
    static func dataError(
        _ error: any Error, strategies: [Strategy] = [], settings: BacktestSettings? = nil,
        fieldPrefix: (Int) -> FieldPath = { _ in .strategy }, settingsPath: FieldPath = .settings
    ) -> BacktestError {
        if var error = error as? BacktestError {
            if error.field == "symbols", let symbol = rejectedTicker(in: error.message) {
                for (index, strategy) in strategies.enumerated() {
                    if let path = StrategyAnalysis.firstPath(of: symbol, in: strategy, root: fieldPrefix(index)) {
                        error.field = path.description
                        return error
                    }
                }
                if settings?.benchmark.uppercased() == symbol { error.field = settingsPath.child("benchmark").description }
            }
            return error
        }
        if error is CancellationError { return BacktestError(.cancelled, "cancelled while fetching market data", cause: error) }
        return BacktestError(.unavailable, "market data could not be loaded", cause: error)
    }
}

extension BacktestPipeline {
    /// "invalid ticker '1ABC': …" → "1ABC" (upper-cased).
    static func rejectedTicker(in message: String) -> String? {
        guard let start = message.range(of: "invalid ticker '") else { return nil }
        let rest = message[start.upperBound...]
        guard let end = rest.firstIndex(of: "'") else { return nil }
        return rest[..<end].uppercased()
    }

    /// A warning when the backtest window starts before some indicator has a value: its first
    /// value comes after `start` because the source's data (from its epoch, or the ticker's
    /// listing) is too short for the indicator's warm-up, so no signal of it is evaluated until
    /// then. Names the binding indicator and the date; nil when every indicator is defined at
    /// `start`.
    static func warmUpWarning(
        _ indicators: IndicatorStore, snapshot: MarketSnapshot, start: TradingDate, source: any MarketDataProvider
    ) -> BacktestWarning? {
        var latest: (date: TradingDate, key: IndicatorKey, firstBar: TradingDate)?
        for (key, values) in indicators.series {
            guard let bars = snapshot.bars[key.ticker], let firstBar = bars.firstDate, values.count == bars.count else { continue }
            guard let index = values.firstIndex(where: { !$0.isNaN }) else { continue }
            let date = bars.dates[index]
            if date > start, latest.map({ date > $0.date || (date == $0.date && key < $0.key) }) ?? true {
                latest = (date, key, firstBar)
            }
        }
        guard let latest else { return nil }
        let origin = latest.firstBar <= source.dataEpoch
            ? "\(source.name)'s data begins \(source.dataEpoch)"
            : "\(latest.key.ticker)'s data from \(source.name) begins \(latest.firstBar)"
        return BacktestWarning(
            .indicatorWarmUp, tickers: [latest.key.ticker], dates: [start, latest.date],
            message: "indicators warm up until \(latest.date) (\(latest.key.spec.canonicalKey) of \(latest.key.ticker)): the window starts \(start) but \(origin); no signal using them is evaluated before \(latest.date)")
    }
}

/// The one-line performance breakdown logged per backtest or batch.
struct PerformanceLine: CustomStringConvertible {
    var label: String
    var stats: RunStatistics

    var description: String {
        func ms(_ value: Double) -> String { String(format: "%.2f", value) }
        var line = "\(label): \(ms(stats.totalMs)) ms (analysis \(ms(stats.analysisMs)), data \(ms(stats.dataMs)), "
        line += "indicators \(ms(stats.indicatorsMs)), simulation \(ms(stats.simulationMs))), "
        line += "cache \(stats.cacheHits) hits / \(stats.cacheMisses) misses (\(String(format: "%.1f", stats.cacheHitRate * 100))%), "
        line += "\(stats.apiCalls) API calls, engine \(stats.engine), data \(stats.dataSource)"
        if stats.variantsPerSecond > 0 { line += ", \(String(format: "%.1f", stats.variantsPerSecond)) variants/s" }
        return line
    }
}
