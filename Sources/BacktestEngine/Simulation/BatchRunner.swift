import BacktestCore
import BacktestModel
import Dispatch

/// Runs many variants on one prepared calendar and one indicator store, on `parallelism`
/// threads. Everything shared is an immutable value (`PreparedMarket`, `IndicatorStore`), so
/// variants need no locks; each worker takes every `parallelism`-th variant.
package enum BatchRunner {
    /// Calls `body(index, outcome)` once per variant, concurrently from up to `parallelism`
    /// threads, and returns when all are done. Blocks the calling thread: call it from a thread
    /// of your own (not a NIO event loop, not Swift's cooperative pool).
    package static func run(
        _ variants: [Strategy], market: PreparedMarket, indicators: IndicatorStore, parallelism: Int,
        engine: VectorEngine = VectorEngine(),
        body: @Sendable (Int, Result<BacktestResult, BacktestError>) -> Void
    ) {
        let workers = max(1, min(parallelism, variants.count))
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var index = worker
            while index < variants.count {
                let outcome = Result { () throws(BacktestError) -> BacktestResult in
                    try engine.run(variants[index], market: market, indicators: indicators)
                }
                body(index, outcome)
                index += workers
            }
        }
    }
}
