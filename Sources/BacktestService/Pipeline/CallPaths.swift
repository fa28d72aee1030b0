import BacktestCore
import BacktestModel

/// Where a call's strategies and settings sit in its request, so every error the call answers
/// names its field from the method (PROTOCOL.md, "Field paths"): the engine and validation build
/// paths under the stand-alone roots `strategy` and `settings`, and `place` moves them here.
///
/// - RunBacktest: `run_backtest.strategy`, `run_backtest.settings`.
/// - RunBatch: variant i at `run_batch.variants[i]` (for a grid, i is the expanded variant's
///   index, the `VariantResult.index` whose `parameters` say which axis values made it),
///   `run_batch.settings`.
package struct CallPaths: Sendable {
    private enum Strategies: Sendable {
        /// One strategy at this path.
        case single(FieldPath)
        /// `run_batch.variants[i]`, strategy i of the call being variant `map[i]` (or i).
        case variants(map: [Int]?)
        /// A grid's analysed strategies: 0 the base, the others its axis values.
        case grid
    }

    package let settings: FieldPath
    private let strategies: Strategies

    package static let runBacktest = CallPaths(settings: "run_backtest.settings", strategies: .single("run_backtest.strategy"))
    package static let runBatch = CallPaths(settings: "run_batch.settings", strategies: .variants(map: nil))
    /// A grid's analysed strategies: 0 is the base (`run_batch.grid.base_strategy`), the others
    /// come from its axis values (`run_batch.grid`).
    package static let gridAnalysis = CallPaths(settings: "run_batch.settings", strategies: .grid)

    /// A batch's paths when strategy i of the call is the batch's variant `indices[i]`.
    package static func runBatch(variants indices: [Int]) -> CallPaths {
        CallPaths(settings: "run_batch.settings", strategies: .variants(map: indices))
    }

    /// The path of strategy `index` of the call.
    package func strategy(_ index: Int) -> FieldPath {
        switch strategies {
        case .single(let path): path
        case .variants(let map): FieldPath("run_batch").child("variants", index: map?[index] ?? index)
        case .grid: index == 0 ? "run_batch.grid.base_strategy" : "run_batch.grid"
        }
    }

    /// `error` (from validation, analysis, data or an engine, its field under `strategy` or
    /// `settings`) with its field placed in the call, for strategy `index`.
    package func place(_ error: BacktestError, strategy index: Int) -> BacktestError {
        error.rerooted(strategy: strategy(index), settings: settings)
    }

    /// `error` with a `settings` field placed in the call (errors of the shared phase that are no
    /// single strategy's).
    package func placeShared(_ error: BacktestError) -> BacktestError {
        var placed = error
        if let moved = FieldPath(error.field).replacingRoot(.settings, with: settings) { placed.field = moved.description }
        return placed
    }
}
