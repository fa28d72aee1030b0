import BacktestCore
import BacktestEngine
import BacktestModel
import Foundation

/// Watches the real v2 engine from inside the server: which variants ran and how many ran at once.
final class EngineProbe: @unchecked Sendable {
    private let lock = NSLock()
    private var running = 0
    private var peakValue = 0
    private var startedNames: [String] = []

    /// The most simulations that ran at the same time.
    var peak: Int { lock.withLock { peakValue } }
    /// Variants whose simulation started, in order.
    var started: [String] { lock.withLock { startedNames } }

    func enter(_ name: String) {
        lock.withLock {
            running += 1
            peakValue = max(peakValue, running)
            startedNames.append(name)
        }
    }

    func exit() {
        lock.withLock { running -= 1 }
    }
}

/// The v2 engine, reporting to a probe.
struct ProbedEngine: BacktestRunner {
    let probe: EngineProbe
    let base = VectorEngine()
    var name: String { base.name }

    func run(
        validated strategy: Strategy, market: PreparedMarket, indicators: IndicatorStore, cancellation: CancellationFlag?,
        bound: AnswerBound
    ) throws(BacktestError) -> BacktestResult {
        probe.enter(strategy.name)
        defer { probe.exit() }
        return try base.run(validated: strategy, market: market, indicators: indicators, cancellation: cancellation, bound: bound)
    }
}
