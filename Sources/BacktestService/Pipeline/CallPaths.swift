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
        /// A grid's analysed strategies (`GridPlan.analysisStrategy`): 0 the base, then one per
        /// axis value, axis by axis (`valueCounts[a]` values for axis a).
        case grid(valueCounts: [Int])
    }

    package let settings: FieldPath
    private let strategies: Strategies

    package static let runBacktest = CallPaths(settings: "run_backtest.settings", strategies: .single("run_backtest.strategy"))
    package static let runBatch = CallPaths(settings: "run_batch.settings", strategies: .variants(map: nil))
    /// A grid's analysed strategies (`GridPlan.analysisStrategy`): 0 is the base
    /// (`run_batch.grid.base_strategy`), each other one the base with one axis value applied
    /// (`run_batch.grid.axes[a].values[v]`, see `gridValueError`).
    package static func gridAnalysis(valueCounts: [Int]) -> CallPaths {
        CallPaths(settings: "run_batch.settings", strategies: .grid(valueCounts: valueCounts))
    }

    /// A batch's paths when strategy i of the call is the batch's variant `indices[i]`.
    package static func runBatch(variants indices: [Int]) -> CallPaths {
        CallPaths(settings: "run_batch.settings", strategies: .variants(map: indices))
    }

    /// The path of strategy `index` of the call.
    package func strategy(_ index: Int) -> FieldPath {
        switch strategies {
        case .single(let path): path
        case .variants(let map): FieldPath("run_batch").child("variants", index: map?[index] ?? index)
        case .grid(let counts):
            if index == 0 { "run_batch.grid.base_strategy" } else { Self.axisValue(index - 1, counts: counts) ?? "run_batch.grid" }
        }
    }

    private static func axisValue(_ offset: Int, counts: [Int]) -> FieldPath? {
        var rest = offset
        for (axis, count) in counts.enumerated() {
            if rest < count { return FieldPath("run_batch.grid").child("axes", index: axis).child("values", index: rest) }
            rest -= count
        }
        return nil
    }

    /// A grid's analysed strategy failed (validation, analysis or data): an error below an axis value
    /// ("run_batch.grid.axes[0].values[1].positions[0].weight", no proto path) names the value
    /// ("run_batch.grid.axes[0].values[1]") and says the strategy field in the message
    /// ("positions[0].weight: weight must be in (0, 1], got 2.0"). Other errors are returned as
    /// they are.
    package func gridValueError(_ error: BacktestError) -> BacktestError {
        guard case .grid(let counts) = strategies else { return error }
        let field = FieldPath(error.field)
        guard let value = (1...max(1, counts.reduce(0, +))).lazy.map({ self.strategy($0) }).first(where: { field.isUnder($0) }),
              field != value else { return error }
        var inner = String(error.field.dropFirst(value.description.count))
        if inner.hasPrefix(".") { inner.removeFirst() }
        return BacktestError(error.code, "\(inner): \(error.message)", field: value.description, cause: error.cause)
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
