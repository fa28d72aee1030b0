import BacktestCore
import BacktestModel

/// Which engine answers a request: `useNewEngine: false` (backtestd: `USE_NEW_ENGINE=false`) selects
/// the reference engine for every request; otherwise (the default) the v2 engine runs and, when it fails
/// unexpectedly, the request is answered by the reference engine with a warning in the result
/// and a call to `log`.
///
/// Every warning of the result (flat benchmark, missing bars, fallback) is also passed to `log`,
/// so the server's log shows what the client is told.
///
/// "Unexpected" means an INTERNAL or UNKNOWN error: v2's own invariants broke. Errors about the
/// request or its data (INVALID_ARGUMENT, NOT_FOUND, ...) are the answer, whichever engine gives
/// them, so they are rethrown without a second attempt.
package struct EngineSelection: Sendable {
    package var useNewEngine: Bool
    package var primary: any BacktestRunner
    package var fallback: any BacktestRunner

    package init(useNewEngine: Bool = true, primary: any BacktestRunner = VectorEngine(), fallback: any BacktestRunner = ReferenceEngine()) {
        self.useNewEngine = useNewEngine
        self.primary = primary
        self.fallback = fallback
    }

    /// Runs `strategy` (already validated against `market.settings`) on the market prepared once
    /// for its request; every warning of the result is also passed to `log`.
    /// Throws CANCELLED soon after `cancellation` is set (the engines check it as they go); a
    /// cancelled run never falls back. Throws RESOURCE_EXHAUSTED soon after the result's orders
    /// outgrow `bound` (no fallback either: the other engine's answer would be as large).
    package func run(
        validated strategy: Strategy, market: PreparedMarket, indicators: IndicatorStore,
        cancellation: CancellationFlag? = nil, bound: AnswerBound = .none, log: (String) -> Void = { _ in }
    ) throws(BacktestError) -> BacktestResult {
        let result = try select(strategy, market: market, indicators: indicators, cancellation: cancellation, bound: bound)
        result.warnings.forEach { log($0.message) }
        return result
    }

    /// The stand-alone form: validates, prepares the market from `snapshot`, then runs.
    package func run(
        _ strategy: Strategy, settings: BacktestSettings, snapshot: MarketSnapshot, indicators: IndicatorStore,
        log: (String) -> Void = { _ in }
    ) throws(BacktestError) -> BacktestResult {
        try Validation.validate(strategy, settings: settings)
        let market = try PreparedMarket(settings: settings, snapshot: snapshot)
        return try run(validated: strategy, market: market, indicators: indicators, log: log)
    }

    private func select(
        _ strategy: Strategy, market: PreparedMarket, indicators: IndicatorStore, cancellation: CancellationFlag?,
        bound: AnswerBound
    ) throws(BacktestError) -> BacktestResult {
        guard useNewEngine else {
            return try fallback.run(validated: strategy, market: market, indicators: indicators, cancellation: cancellation, bound: bound)
        }
        do {
            return try primary.run(validated: strategy, market: market, indicators: indicators, cancellation: cancellation, bound: bound)
        } catch where error.code == .internal || error.code == .unknown {
            var result = try fallback.run(
                validated: strategy, market: market, indicators: indicators, cancellation: cancellation, bound: bound)
            result.warnings.append(BacktestWarning(
                .engineFallback,
                message: "the \(primary.name) engine failed (\(error)); answered by the \(fallback.name) engine"))
            return result
        }
    }
}
