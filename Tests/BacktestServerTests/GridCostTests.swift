import BacktestCore
import BacktestEngine
import BacktestModel
@testable import BacktestService
import BacktestTestSupport
import Foundation
import Testing

/// Issue 12, what session 8's testers left open about grids: an axis path is checked against
/// every position it reaches, overlapping axes are refused, and validating a grid costs what its
/// values change, not the base's size once per value.
@Suite struct GridCostTests {
    static let base = SweepBatchTests.base

    /// A base whose second position enters on an `all` (no `lhs`, `rhs` or `op` of its own).
    static let mixed: Strategy = {
        var strategy = base
        strategy.positions[0].weight = 0.5
        var second = base.positions[0]
        second.ticker = "MSFT"
        second.weight = 0.5
        second.entry = .all([base.positions[0].entry, base.positions[0].entry])
        strategy.positions.append(second)
        return strategy
    }()

    /// `positions[*].entry.lhs` where one position's entry is an `all`: the path does not fit that
    /// position, so the path is the error (a tester's was named on `values[0]`), and so are its
    /// neighbours through `[*]`.
    @Test(arguments: ["positions[*].entry.lhs", "positions[*].entry.op", "positions[*].entry.rhs", "positions[1].entry.lhs"])
    func aWildcardPathThatMissesOnePositionNamesThePath(path: String) {
        let error = #expect(throws: BacktestError.self) {
            try GridPlan(Grid(base: Self.mixed, axes: [
                GridAxis(path: "commission_bps", values: ["1", "2"]),
                GridAxis(path: path, values: path.hasSuffix(".op") ? [">", "<"] : ["sma:7", "sma:8"]),
            ]), field: "run_batch.grid")
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.field == "run_batch.grid.axes[1].path", "\(error?.field ?? ""): \(error?.message ?? "")")
        #expect(error?.message.contains("positions[1].entry") == true, "\(error?.message ?? "")")
    }

    /// Axes whose places overlap are refused on the later axis's path, in both orders: through
    /// `[*]`, a path inside another, the whole positions list and one of its fields.
    @Test(arguments: [
        ("positions[*].weight", "positions[0].weight"),
        ("positions[0].weight", "positions[*].weight"),
        ("positions[0]", "positions[0].weight"),
        ("positions[0].entry.lhs", "positions[0].entry"),
        ("positions", "positions[*].ticker"),
    ])
    func overlappingAxesAreRefused(first: String, second: String) {
        let value = { (path: String) -> [String] in
            switch path {
            case "positions[0]": [#"{"ticker": "AAPL", "weight": 1, "entry": {"lhs": "close", "op": ">", "rhs": "sma:9"}}"#]
            case "positions": [#"[{"ticker": "AAPL", "weight": 1, "entry": {"lhs": "close", "op": ">", "rhs": "sma:9"}}]"#]
            case "positions[0].entry": [#"{"lhs": "close", "op": ">", "rhs": "sma:9"}"#]
            case "positions[0].entry.lhs": ["sma:6"]
            case "positions[*].ticker": ["MSFT"]
            default: ["0.5"]
            }
        }
        let error = #expect(throws: BacktestError.self) {
            try GridPlan(Grid(base: Self.base, axes: [
                GridAxis(path: first, values: value(first)),
                GridAxis(path: second, values: value(second)),
            ]), field: "run_batch.grid")
        }
        #expect(error?.field == "run_batch.grid.axes[1].path", "\(first) + \(second): \(error?.message ?? "")")
        #expect(error?.message.contains("overlaps axes[0]") == true, "\(error?.message ?? "")")
    }

    /// Places that only look alike are not overlaps: sibling fields, two positions, entry and exit.
    @Test func siblingPlacesAreNotOverlaps() throws {
        let plan = try GridPlan(Grid(base: Self.mixed, axes: [
            GridAxis(path: "positions[0].weight", values: ["0.4", "0.5"]),
            GridAxis(path: "positions[1].weight", values: ["0.4", "0.5"]),
            GridAxis(path: "positions[*].ticker", values: ["AAPL", "MSFT"]),
            GridAxis(path: "positions[0].entry.lhs", values: ["sma:6"]),
            GridAxis(path: "positions[0].entry.rhs", values: ["sma:100"]),
        ]), field: "run_batch.grid")
        #expect(plan.count == 8)
    }
}
