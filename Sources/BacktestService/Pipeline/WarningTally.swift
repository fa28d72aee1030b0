import BacktestCore
import Logging
import Synchronization

/// The warnings the simulations of one call gave (flat benchmark, late or early tickers, missing
/// bars, engine fallback), counted while the variants run and logged as one line when the call's
/// simulations are over (`log(to:label:)`).
///
/// A batch's variants usually share their data, so they repeat the same facts: 256 variants over
/// 40 late-listed tickers used to write 10,240 log lines; the tally writes one, with the count of
/// each kind, the number of variants that said it and the first text of each kind (escaped and
/// bounded, see `LogText`). The client still gets every warning in each variant's result.
///
/// Safe to use from the compute threads that run the simulations.
package final class WarningTally: Sendable {
    private struct Kind {
        var count = 0
        var variants = 0
        var example: String
    }

    private struct State {
        var kinds: [BacktestWarning.Kind: Kind] = [:]
        var order: [BacktestWarning.Kind] = []
        var variants = 0
    }

    private let state = Mutex(State())

    package init() {}

    /// Counts the warnings of one variant's result (nothing when it has none).
    package func note(_ warnings: [BacktestWarning]) {
        guard !warnings.isEmpty else { return }
        state.withLock { state in
            state.variants += 1
            var seen = Set<BacktestWarning.Kind>()
            for warning in warnings {
                if state.kinds[warning.kind] == nil {
                    state.kinds[warning.kind] = Kind(example: warning.message)
                    state.order.append(warning.kind)
                }
                state.kinds[warning.kind]!.count += 1
                if seen.insert(warning.kind).inserted { state.kinds[warning.kind]!.variants += 1 }
            }
        }
    }

    /// The line `log(to:label:)` writes, or nil when no variant gave a warning. `label` names the
    /// call ("backtest 'name'" or "batch ID") and is written as given: escape client data in it.
    package func line(label: String) -> String? {
        state.withLock { state in
            guard !state.order.isEmpty else { return nil }
            let parts = state.order.map { kind in
                let tally = state.kinds[kind]!
                let example = LogText(tally.example, limit: LogText.messageLimit)
                return "\(kind): \(tally.count) in \(tally.variants) variant\(tally.variants == 1 ? "" : "s") (first: \(example))"
            }
            return "\(label): warnings from \(state.variants) variant\(state.variants == 1 ? "" : "s"): \(parts.joined(separator: "; "))"
        }
    }

    /// Writes `line(label:)` as one warning, if any variant gave one.
    package func log(to logger: Logger, label: String) {
        if let line = line(label: label) { logger.warning("\(line)") }
    }
}
