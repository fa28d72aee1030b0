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
        #expect(error?.message.hasSuffix("use a path per position where they differ") == path.contains("[*]"), "\(error?.message ?? "")")
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

extension GridCostTests {
    static func position(_ ticker: String, weight: Double = 0.3, sizing: SizingMode = .weight, size: Double = 0) -> Position {
        Position(ticker: ticker, weight: weight, entry: base.positions[0].entry, sizing: sizing, size: size)
    }

    /// Three weight-sized positions of 0.3 (sum 0.9), or cash-sized of 30,000 each.
    static func three(cash: Bool = false, leverage: Bool = false) -> Strategy {
        Strategy(name: "three", positions: ["AAPL", "MSFT", "SPY"].map {
            cash ? position($0, sizing: .cash, size: 30_000) : position($0)
        }, allowLeverage: leverage)
    }

    /// What checking every analysis strategy whole gives: the first one's error, placed on its
    /// axis value, or nil.
    static func wholeOutcome(_ plan: GridPlan, settings: BacktestSettings) -> BacktestError? {
        let paths = CallPaths.gridAnalysis(valueCounts: plan.valueCounts)
        for i in 0..<plan.analysisCount {
            do throws(BacktestError) {
                let strategy = try plan.analysisStrategy(i)
                try Validation.validate(strategy, path: paths.strategy(i))
                try Validation.validateCashSizing(strategy, settings: settings, path: paths.strategy(i))
            } catch {
                return paths.gridValueError(error)
            }
        }
        return nil
    }

    /// The shared phase checks each axis value at the cost of what it changes; its outcome is
    /// the one of checking each analysis strategy whole: the same first error (field and
    /// message) or none, for fields of the strategy, one position (weights summing to just
    /// below, at and above 1, a zero weight, cash above the capital), `[*]`, a whole position,
    /// the positions list and allow_leverage switched off over weights summing above 1.
    @Test(arguments: [
        ("positions[1].weight", ["0.2", "0.4", "0.39999999", "0.5"], false, false),
        ("positions[1].weight", ["0.2", "0"], false, false),
        ("positions[2].weight", ["0.4"], false, false),
        ("positions[1].size", ["10000", "40000", "40001"], true, false),
        ("commission_bps", ["1", "-1"], false, false),
        ("slippage_bps", ["10000"], false, false),
        ("allow_leverage", ["true", "false"], false, true),
        ("positions[*].weight", ["0.2", "0.33333333", "0.34"], false, false),
        ("positions[0].entry.lhs", ["sma:5", "ema:7"], false, false),
        ("positions[*].entry.rhs", ["sma:7", "0"], false, false),
        ("positions[1]", [#"{"ticker": "QQQ", "weight": 0.3, "entry": {"lhs": "close", "op": ">", "rhs": 0}}"#,
                          #"{"ticker": "QQQ", "weight": 0.8, "entry": {"lhs": "close", "op": ">", "rhs": 0}}"#], false, false),
        ("positions", [#"[{"ticker": "QQQ", "weight": 1, "entry": {"lhs": "close", "op": ">", "rhs": 0}}]"#], false, false),
        ("positions[2].stop_loss", ["0.05", "0.5"], false, false),
    ])
    func checkingTheChangeAgreesWithCheckingTheWhole(path: String, values: [String], cash: Bool, overweight: Bool) async throws {
        var base = Self.three(cash: cash, leverage: overweight)
        if overweight { base.positions = base.positions.map { var p = $0; p.weight = 0.5; return p } }
        let plan = try GridPlan(Grid(base: base, axes: [GridAxis(path: "name", values: ["a", "b"]), GridAxis(path: path, values: values)]))
        let pipeline = try ExecutionPathTests.pipeline(observer: CountingObserver())
        let expected = Self.wholeOutcome(plan, settings: ExecutionPathTests.settings)
        var outcome: BacktestError?
        do {
            _ = try await pipeline.validate(grid: plan, settings: ExecutionPathTests.settings)
        } catch {
            outcome = error
        }
        #expect(outcome?.field == expected?.field, "\(path): \(outcome?.message ?? "passed") / \(expected?.message ?? "passed")")
        #expect(outcome?.message == expected?.message, "\(path)")
    }

    /// What the kept analysis strategies read together is what every analysis strategy reads:
    /// tickers and indicator series through one position, `[*]`, a whole position and the list.
    @Test func theKeptPartsReadWhatEveryAnalysisStrategyReads() async throws {
        let pipeline = try ExecutionPathTests.pipeline(observer: CountingObserver())
        let settings = ExecutionPathTests.settings
        for axes in [
            [GridAxis(path: "positions[0].entry.lhs", values: ["sma:5", "sma:6", "ema:6"]),
             GridAxis(path: "positions[1].ticker", values: ["MSFT", "QQQ"]),
             GridAxis(path: "commission_bps", values: ["1", "2"]),
             GridAxis(path: "positions[2].stop_atr_period", values: ["14", "20"])],
            [GridAxis(path: "positions[*].ticker", values: ["AAPL", "IWM"]),
             GridAxis(path: "positions[0].entry.lhs", values: ["sma:5", "ema:6"])],
            [GridAxis(path: "positions[*].entry.rhs", values: ["sma:7", "0"]), GridAxis(path: "fill", values: ["close"])],
            [GridAxis(path: "positions", values: [#"[{"ticker": "QQQ", "weight": 1, "entry": {"lhs": "close", "op": ">", "rhs": "wma:4"}}]"#])],
        ] {
            var base = Self.three()
            base.positions[2].exits.stopLoss = 0.5
            let plan = try GridPlan(Grid(base: base, axes: axes))
            let kept = try await pipeline.validate(grid: plan, settings: settings)
            let all = try (0..<plan.analysisCount).map { try plan.analysisStrategy($0) }
            #expect(try StrategyAnalysis(strategies: kept.map(\.strategy), settings: settings) == StrategyAnalysis(strategies: all, settings: settings),
                    "\(axes.map(\.path))")
            // The base whole, then only positions that read something new.
            #expect(kept[0].basePositions == nil)
            #expect(kept.dropFirst().allSatisfy { $0.strategy.positions.count == $0.basePositions?.count })
        }
        let plan = try GridPlan(Grid(base: Self.three(), axes: [
            GridAxis(path: "positions[1].ticker", values: ["MSFT", "QQQ"]), GridAxis(path: "commission_bps", values: ["1", "2"]),
        ]))
        let kept = try await pipeline.validate(grid: plan, settings: settings)
        #expect(kept.map(\.path.description) == ["run_batch.grid.base_strategy", "run_batch.grid.axes[0].values[1]"])
        #expect(kept.map(\.basePositions) == [nil, [1]])
    }

    /// Axes whose values change every position are bounded by the checks they cost (values x the
    /// base's positions), naming the axis; the same count on one position is not.
    @Test func valuesOverEveryPositionAreBounded() throws {
        var base = Self.three()
        base.positions = (0..<1_000).map { _ in Self.position("AAPL", weight: 0.0005) }
        let over = #expect(throws: BacktestError.self) {
            try GridPlan(Grid(base: base, axes: [
                GridAxis(path: "commission_bps", values: ["1"]),
                GridAxis(path: "positions[*].weight", range: "0.00001..0.3/0.00001"),
            ]), field: "run_batch.grid")
        }
        #expect(over?.code == .invalidArgument)
        #expect(over?.field == "run_batch.grid.axes[1]")
        #expect(over?.message.contains("30000000 position checks") == true, "\(over?.message ?? "")")
        let plan = try GridPlan(Grid(base: base, axes: [GridAxis(path: "positions[0].weight", range: "0.00001..0.3/0.00001")]))
        #expect(plan.count == 30_000)
    }

    /// Every variant of `plan` equals `base` as JSON with the variant's values set at their
    /// paths, decoded (the CLI's expansion).
    static func expectVariantsEqualTheJSONExpansion(_ plan: GridPlan, of base: Strategy) throws {
        let document = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(base))
        for index in 0..<plan.count {
            var edited = document
            for parameter in plan.parameters(of: index) {
                edited = try JSONPath(parsing: parameter.path).setting(JSONValue.commandLine(parameter.value), in: edited)
            }
            #expect(try plan.strategy(index) == VariantExpansion.strategy(from: edited, label: "\(index)"), "variant \(index)")
        }
    }

    /// Variants built in place over many zipped axes and positions equal the JSON expansion.
    @Test func variantsBuiltInPlaceEqualTheJSONExpansion() throws {
        var base = Self.three()
        base.positions = (0..<20).map { Self.position(["AAPL", "MSFT"][$0 % 2], weight: 0.01) }
        let axes = (0..<20).map { GridAxis(path: "positions[\($0)].weight", values: ["0.02", "0.03", "0.04"], zipGroup: 1) }
            + [GridAxis(path: "positions[3].entry.rhs", values: ["sma:30", "1"]), GridAxis(path: "fill", values: ["close", "next_open"])]
        let plan = try GridPlan(Grid(base: base, axes: axes))
        #expect(plan.count == 12)
        try Self.expectVariantsEqualTheJSONExpansion(plan, of: base)
    }

    /// Through `[*]` into conditions, variants are built in place in every position, and equal
    /// the JSON expansion: a comparison's sides and operator, the whole entry, an exit set,
    /// replaced or removed, inside `all` and `not`.
    @Test(arguments: [
        [GridAxis(path: "positions[*].entry.lhs", values: ["sma:7", "close", #"{"series": "volume", "ticker": "SPY"}"#])],
        [GridAxis(path: "positions[*].entry.op", values: [">", "crosses_below"]), GridAxis(path: "positions[1].weight", values: ["0.2", "0.3"])],
        [GridAxis(path: "positions[*].entry", values: [#"{"not": {"lhs": "rsi:14", "op": ">", "rhs": 70}}"#])],
        [GridAxis(path: "positions[*].exit", values: [#"{"lhs": "close", "op": "<", "rhs": "ema:9"}"#, "null"])],
        [GridAxis(path: "positions[*].exit.all[1].not.rhs", values: ["50", "sma:3"])],
        [GridAxis(path: "positions[*].direction", values: ["long", "short"]), GridAxis(path: "positions[*].sizing", values: ["weight", "cash"])],
        [GridAxis(path: "positions[*].stop_atr_period", values: ["14", "null"]), GridAxis(path: "positions[*].stop_loss", values: ["2", "3"])],
        [GridAxis(path: "positions[*]", values: [#"{"ticker": "SPY", "weight": 0.1, "entry": {"lhs": "close", "op": ">", "rhs": "sma:9"}, "direction": "short"}"#])],
        [GridAxis(path: "positions[2].direction", values: ["short"]), GridAxis(path: "positions[3].stop_atr_period", values: ["5", "20"])],
    ])
    func wildcardConditionVariantsEqualTheJSONExpansion(axes: [GridAxis]) throws {
        var base = Self.three()
        base.positions = (0..<5).map { Self.position(["AAPL", "MSFT"][$0 % 2], weight: 0.1) }
        let inner = base.positions[0].entry
        if axes[0].path.contains("exit.all") {
            for p in base.positions.indices { base.positions[p].exit = .all([inner, .not(inner)]) }
        }
        let plan = try GridPlan(Grid(base: base, axes: axes))
        #expect(plan.encodedPositions <= axes.count, "at most one position per axis: never the whole base")
        try Self.expectVariantsEqualTheJSONExpansion(plan, of: base)
    }

    /// A sweep's chunks are bounded in positions as well as variants (a chunk's plan holds every
    /// position's legs: 4,096 variants of a 1,000-position grid held 221 MB), at least one
    /// variant each.
    @Test func sweepChunksAreBoundedInPositions() {
        func one(_ positions: Int) -> Strategy {
            var strategy = Self.base
            strategy.positions = Array(repeating: Self.base.positions[0], count: positions)
            return strategy
        }
        let source = BatchSource(settings: ExecutionPathTests.settings, variants: [1, 2, 3, 10, 1, 1].map(one), grid: nil, detail: .summary)
        let work = Array(0..<6)
        var ends: [Int] = []
        var start = 0
        while start < work.count {
            start = SweepBatchRun.chunkEnd(work, from: start, source: source, variants: 4, positions: 6)
            ends.append(start)
        }
        #expect(ends == [3, 4, 6])
        #expect(SweepBatchRun.chunkEnd(work, from: 0, source: source, variants: 2, positions: 100) == 2)
    }

    /// A base of `count` positions, all equal to the base's but position `odd` (when given),
    /// whose entry is an `all` of two comparisons.
    static func many(_ count: Int, odd: Int? = nil) -> Strategy {
        var strategy = base
        var one = base.positions[0]
        one.weight = 1 / Double(count)
        strategy.positions = Array(repeating: one, count: count)
        if let odd { strategy.positions[odd].entry = .all([one.entry, one.entry]) }
        return strategy
    }

    /// Resolving a grid writes as JSON only the positions its paths name, never the whole base
    /// (the base went through Foundation JSON whole: a grid with one bad value over a
    /// 100,000-position base took 5.6 s of CPU to refuse, 0.24 s now; README). A `[*]` path
    /// reads the base's distinct positions.
    @Test(arguments: [
        ("positions[3].weight", ["0.5", "0.25"], 1),
        ("positions[3].entry.rhs", ["sma:50", "sma:60"], 1),
        ("positions[3].entry.rhs", [#"{"series": "close", "ticker": "SPY"}"#], 1),
        ("commission_bps", ["1", "2"], 1),
        ("positions", [#"[{"ticker": "MSFT", "weight": 0.5, "entry": {"lhs": "close", "op": ">", "rhs": "sma:9"}}]"#], 0),
        ("positions[*].weight", ["0.0001", "0.0002"], 1),
        ("positions[*].entry.lhs", ["sma:7", "sma:8"], 1),
        ("positions[*].exit", [#"{"lhs": "close", "op": "<", "rhs": "sma:9"}"#, "null"], 1),
        ("positions[*].direction", ["long", "short"], 1),
        ("positions[*]", [#"{"ticker": "MSFT", "weight": 0.0001, "entry": {"lhs": "close", "op": ">", "rhs": "sma:9"}}"#], 1),
        // Not a typed place: variants are built through the whole base's JSON.
        ("positions[2].entry.ticker", ["MSFT", "SPY"], 10_001),
    ])
    func aGridWritesOnlyThePositionsItsPathsNameAsJSON(path: String, values: [String], encoded: Int) throws {
        let plan = try GridPlan(Grid(base: Self.many(10_000), axes: [GridAxis(path: path, values: values)]), field: "run_batch.grid")
        #expect(plan.encodedPositions == encoded)
        #expect(plan.count == values.count)
    }

    /// An invalid value is refused naming the value, in the base's terms, whichever position it
    /// is found in: its own position, or through `[*]` the first position it fails in.
    @Test(arguments: [
        ("positions[7].weight", "abc", "expected a number, found a string"),
        ("positions[*].weight", "\"x\"", "expected a number, found a string"),
        ("positions[7].entry.rhs", "nope:3", "unknown indicator 'nope'"),
        ("positions[*].entry.rhs", "nope:3", "unknown indicator 'nope'"),
        ("commission_bps", "\"x\"", "expected a number, found a string"),
        ("positions", #"[{"ticker": "MSFT"}]"#, "missing required key 'entry'"),
    ])
    func anInvalidValueOverALargeBaseIsRefusedByItsValue(path: String, value: String, words: String) {
        let first = path == "positions" ? #"[{"ticker": "MSFT", "weight": 0.5, "entry": {"lhs": "close", "op": ">", "rhs": "sma:9"}}]"# : "0.5"
        let error = #expect(throws: BacktestError.self) {
            try GridPlan(Grid(base: Self.many(10_000), axes: [GridAxis(path: path, values: [first, value])]), field: "run_batch.grid")
        }
        #expect(error?.field == "run_batch.grid.axes[0].values[1]", "\(error?.field ?? ""): \(error?.message ?? "")")
        #expect(error?.message.contains(words) == true, "\(error?.message ?? "")")
    }

    /// Through `[*]` a position's key is checked on one position (setting and decoding it does
    /// not depend on the position), and a path into `entry` or `exit` on one position per
    /// distinct condition: distinct weights do not make the whole base JSON.
    @Test func aWildcardChecksOnePositionPerDistinctPlace() throws {
        var base = Self.many(200, odd: 150)
        for p in base.positions.indices { base.positions[p].weight = Double(p + 1) / 1e6 }
        for (path, values, encoded) in [
            ("positions[*].weight", ["0.0001", "0.0002"], 1), ("positions[*].stop_loss", ["0.1"], 1),
            ("positions[*].exit", [#"{"lhs": "close", "op": "<", "rhs": "sma:9"}"#], 1),
        ] {
            let plan = try GridPlan(Grid(base: base, axes: [GridAxis(path: path, values: values)]), field: "run_batch.grid")
            #expect(plan.encodedPositions == encoded, "\(path)")
        }
        // Through `entry`, one per distinct entry: the error names position 150, the first whose
        // entry the path does not fit.
        let error = #expect(throws: BacktestError.self) {
            try GridPlan(Grid(base: base, axes: [GridAxis(path: "positions[*].entry.op", values: ["<"])]), field: "run_batch.grid")
        }
        #expect(error?.message.contains("positions[150].entry") == true, "\(error?.message ?? "")")
    }

    /// Through `[*]` over equal positions and one that differs, a path that does not fit that
    /// one is named at its index in the base (found among the distinct positions, where it is
    /// the second), and so is a value that fails there.
    @Test func aWildcardOverDistinctPositionsNamesTheBasesIndex() throws {
        let odd = Self.many(20, odd: 13)
        let error = #expect(throws: BacktestError.self) {
            try GridPlan(Grid(base: odd, axes: [GridAxis(path: "positions[*].entry.lhs", values: ["sma:7"])]), field: "run_batch.grid")
        }
        #expect(error?.field == "run_batch.grid.axes[0].path", "\(error?.field ?? ""): \(error?.message ?? "")")
        #expect(error?.message.contains("positions[13].entry") == true, "\(error?.message ?? "")")
        // A path that fits every position: variants equal the JSON path's.
        let plan = try GridPlan(Grid(base: odd, axes: [GridAxis(path: "positions[*].weight", values: ["0.01", "0.02"])]), field: "run_batch.grid")
        #expect(plan.encodedPositions == 1)
        #expect(try plan.strategy(1).positions.allSatisfy { $0.weight == 0.02 })
        let variant = try plan.strategy(1)
        #expect(variant.positions[13].entry == (try odd.fileForm()).positions[13].entry)
    }
}
