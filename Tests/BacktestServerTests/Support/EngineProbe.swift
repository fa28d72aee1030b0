import BacktestCore
import BacktestEngine
import Foundation

/// Watches the real v2 engine from inside the server: which variants ran, how many ran at once,
/// and, on request, holds one variant until the test opens a gate or the variant's task is
/// cancelled, so a test can act "while variant k runs" without guessing at timing.
///
/// The hold blocks the simulating thread (the engine is synchronous); tests hold at most one
/// variant at a time, which leaves the rest of the cooperative pool free.
final class EngineProbe: @unchecked Sendable {
    enum Hold: Sendable {
        case none
        /// Variant `name` waits until `openGate()`.
        case untilGateOpens(String)
        /// Variant `name` waits until its task is cancelled.
        case untilCancelled(String)
    }

    /// An upper bound on any hold: a test that forgets to release fails instead of hanging.
    static let holdLimit: TimeInterval = 30

    private let condition = NSCondition()
    private let hold: Hold
    private var gateOpen = false
    private var running = 0
    private var peakValue = 0
    private var startedNames: [String] = []
    private var heldNames: [String] = []

    init(hold: Hold = .none) { self.hold = hold }

    /// The most simulations that ran at the same time.
    var peak: Int { condition.withLock { peakValue } }
    /// Variants whose simulation started, in order.
    var started: [String] { condition.withLock { startedNames } }
    /// Variants currently held.
    var held: [String] { condition.withLock { heldNames } }

    func openGate() {
        condition.withLock {
            gateOpen = true
            condition.broadcast()
        }
    }

    func enter(_ name: String) {
        condition.withLock {
            running += 1
            peakValue = max(peakValue, running)
            startedNames.append(name)
        }
    }

    func exit() {
        condition.withLock { running -= 1 }
    }

    /// Blocks if `name` is the held variant; throws CANCELLED when the hold ended by cancellation.
    func holdIfAsked(_ name: String) throws(BacktestError) {
        let deadline = Date(timeIntervalSinceNow: Self.holdLimit)
        switch hold {
        case .untilGateOpens(let held) where held == name:
            condition.withLock {
                heldNames.append(name)
                while !gateOpen, condition.wait(until: deadline) {}
                heldNames.removeAll { $0 == name }
            }
        case .untilCancelled(let held) where held == name:
            condition.withLock { heldNames.append(name) }
            // Cancellation has no signal a synchronous function can wait on: poll the flag.
            while !Task.isCancelled, Date() < deadline { usleep(500) }
            condition.withLock { heldNames.removeAll { $0 == name } }
            if Task.isCancelled { throw BacktestError(.cancelled, "variant \(name) cancelled while held") }
        default:
            break
        }
    }
}

/// The v2 engine, reporting to a probe.
struct ProbedEngine: BacktestRunner {
    let probe: EngineProbe
    let base = VectorEngine()
    var name: String { base.name }

    func run(
        _ strategy: Strategy, settings: BacktestSettings, snapshot: MarketSnapshot, indicators: IndicatorStore
    ) throws(BacktestError) -> BacktestResult {
        probe.enter(strategy.name)
        defer { probe.exit() }
        try probe.holdIfAsked(strategy.name)
        return try base.run(strategy, settings: settings, snapshot: snapshot, indicators: indicators)
    }
}
