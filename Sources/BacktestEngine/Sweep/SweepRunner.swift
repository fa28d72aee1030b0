import BacktestCore
import BacktestModel
import Dispatch

/// Runs many variants on one prepared calendar and answers each with a `BacktestSummary`
/// (metrics, final equity, order count, warnings; no curves, no orders): the engine path for
/// sweeps of thousands of variants.
///
/// Shared across variants, computed once: the calendar (`PreparedMarket`), the indicator series
/// (`indicators`, computed by the caller once per unique key), every unique operand aligned to
/// the calendar, and every comparison that several conditions use, as a bit vector
/// (`SweepPlan`). Per variant: its conditions combined from those bit vectors, the portfolio
/// loop, and a one-pass metric accumulator (`MetricAccumulator`) writing into one returns buffer
/// per thread, so no equity curve or order list is allocated.
///
/// Each summary equals `BacktestSummary(VectorEngine().run(variant, market:, indicators:))` to
/// the bit, and a variant that fails gets the same error as that full run (`SweepTests`).
package enum SweepRunner {
    /// Calls `body(index, outcome)` once per variant, concurrently from up to `parallelism`
    /// threads, and returns when all are done. Blocks the calling thread: call it from a thread
    /// of your own (not a NIO event loop, not Swift's cooperative pool).
    ///
    /// Cancellation: once `cancellation` is set, each worker stops at its next check (before a
    /// variant, and within the running variant's portfolio loop) and `run` returns; variants not
    /// finished by then get no `body` call (a variant stopped midway is not reported as failed).
    package static func run(
        _ variants: [Strategy], market: PreparedMarket, indicators: IndicatorStore, parallelism: Int,
        cancellation: CancellationFlag? = nil,
        body: @Sendable (Int, Result<BacktestSummary, BacktestError>) -> Void
    ) {
        guard !variants.isEmpty else { return }
        let plan = SweepPlan(variants, market: market, indicators: indicators, parallelism: parallelism)
        let workers = max(1, min(parallelism, variants.count))
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            let returns = UnsafeMutableBufferPointer<Double>.allocate(capacity: max(market.dates.count, 1))
            defer { returns.deallocate() }
            var index = worker
            while index < variants.count {
                do { try cancellation.check() } catch { return }
                let outcome = Result { () throws(BacktestError) -> BacktestSummary in
                    try summary(
                        variants[index], compiled: plan.variants[index], plan: plan, indicators: indicators, returns: returns,
                        cancellation: cancellation)
                }
                if case .failure(let error) = outcome, error.code == .cancelled, cancellation?.isCancelled == true { return }
                body(index, outcome)
                index += workers
            }
        }
    }

    /// Every variant's outcome, in order (`run` collected into an array).
    package static func summaries(
        _ variants: [Strategy], market: PreparedMarket, indicators: IndicatorStore, parallelism: Int
    ) -> [Result<BacktestSummary, BacktestError>] {
        // Each index is written once, by one worker: distinct slots of one buffer need no lock.
        let slots = Slots<Result<BacktestSummary, BacktestError>>(count: variants.count)
        run(variants, market: market, indicators: indicators, parallelism: parallelism) { index, outcome in
            slots.buffer[index] = outcome
        }
        return slots.buffer.map { $0! }
    }

    private static func summary(
        _ strategy: Strategy, compiled: SweepPlan.Variant?, plan: SweepPlan, indicators: IndicatorStore,
        returns: UnsafeMutableBufferPointer<Double>, cancellation: CancellationFlag?
    ) throws(BacktestError) -> BacktestSummary {
        let market = plan.market
        guard let compiled else {
            // The plan could not compile it: the full engine says why (or, if it can run after
            // all, its summary is the answer).
            return BacktestSummary(try VectorEngine().run(strategy, market: market, indicators: indicators, cancellation: cancellation))
        }
        let clock = ContinuousClock()
        let started = clock.now
        try Validation.validate(strategy, settings: market.settings)
        var legs: [PortfolioLeg] = []
        legs.reserveCapacity(compiled.legs.count)
        for (position, leg) in zip(strategy.positions, compiled.legs) {
            legs.append(PortfolioLeg(
                position: position, ticker: leg.ticker, entry: plan.evaluate(leg.entry), exit: leg.exit.map(plan.evaluate)))
        }
        let recorder = MetricAccumulator(benchmark: plan.benchmark, returns: returns)
        var loop = PortfolioLoop(strategy: strategy, market: market, legs: legs, recorder: recorder)
        try loop.run(cancellation: cancellation)
        let metrics = loop.recorder.metrics(
            tradeCount: loop.tradeCount, exposure: Double(loop.daysExposed) / Double(max(market.dates.count, 1)))
        var warnings = compiled.warnings
        warnings += loop.warnings
        if let undefined = PerformanceMetrics.undefinedRatioWarning(metrics, dayCount: loop.recorder.dayCount) { warnings.append(undefined) }
        var stats = RunStatistics()
        stats.engine = VectorEngine().name
        stats.dataSource = market.dataSource
        stats.barsProcessed = market.dates.count * strategy.positions.count
        stats.simulationMs = (clock.now - started).milliseconds
        return BacktestSummary(
            strategyName: strategy.name, metrics: metrics, benchmarkMetrics: market.benchmarkMetrics,
            finalEquity: loop.recorder.dayCount > 0 ? loop.recorder.last : market.settings.initialCapital,
            initialCapital: market.settings.initialCapital, orderCount: loop.recorder.orderCount, warnings: warnings,
            stats: stats)
    }
}
