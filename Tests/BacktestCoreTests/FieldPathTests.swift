import BacktestCore
import Testing

/// `FieldPath` renders its text on demand from a chain of levels (issue 12): the text, equality,
/// `isUnder`, `replacingRoot` and re-rooted errors are exactly those of the former string paths.
@Suite("FieldPath: levels rendered on demand")
struct FieldPathTests {
    @Test func rendersLevelsJoinedByDotsWithIndices() {
        let root: FieldPath = "run_batch"
        #expect(root.description == "run_batch")
        #expect(FieldPath("").description == "")
        #expect(FieldPath("").child("settings").description == "settings")
        #expect(FieldPath("").child("positions", index: 3).description == "positions[3]")
        let path = root.child("variants", index: 2).child("positions", index: 0).child("entry").child("compare").child("op")
        #expect(path.description == "run_batch.variants[2].positions[0].entry.compare.op")
        #expect("\(path)" == path.description)
        // A path made from text keeps it as one level; children append to it.
        #expect(FieldPath("run_batch.variants[7]").child("name").description == "run_batch.variants[7].name")
        // Children share their parent: a path is unchanged by the children taken from it.
        let parent = FieldPath.strategy.child("positions", index: 1)
        _ = parent.child("weight")
        #expect(parent.child("ticker").description == "strategy.positions[1].ticker")
        #expect(parent.description == "strategy.positions[1]")
        // As `child` always joined: an empty name still adds its dot.
        #expect(FieldPath("a").child("").child("b").description == "a..b")
        #expect(FieldPath("").child("").child("b").description == "b")
    }

    @Test func equalityAndHashingFollowTheText() {
        let built = FieldPath.strategy.child("positions", index: 0).child("weight")
        let text = FieldPath("strategy.positions[0].weight")
        #expect(built == text)
        #expect(built.hashValue == text.hashValue)
        #expect(Set([built, text, FieldPath.strategy.child("positions")]).count == 2)
        #expect(built != FieldPath.strategy.child("positions", index: 1).child("weight"))
        #expect(FieldPath("") == FieldPath(""))
    }

    @Test func isUnderAndReplacingRootWorkOnTheRenderedText() {
        let path = FieldPath.strategy.child("positions", index: 0).child("ticker")
        #expect(path.isUnder(.strategy))
        #expect(path.isUnder(FieldPath.strategy.child("positions", index: 0)))
        #expect(FieldPath.strategy.child("positions", index: 0).isUnder("strategy.positions"))
        #expect(FieldPath.strategy.isUnder(.strategy))
        #expect(!FieldPath("strategy_name").isUnder(.strategy))
        #expect(!FieldPath.settings.child("end_date").isUnder(.strategy))
        let moved = path.replacingRoot(.strategy, with: FieldPath("run_batch").child("variants", index: 3))
        #expect(moved?.description == "run_batch.variants[3].positions[0].ticker")
        #expect(FieldPath.strategy.replacingRoot(.strategy, with: "run_backtest.strategy")?.description == "run_backtest.strategy")
        #expect(path.replacingRoot(.settings, with: "run_batch.settings") == nil)
    }

    @Test func errorsCarryTheRenderedTextAndReroot() {
        let error = BacktestError.invalidArgument("weight must be in (0, 1], got 2", at: FieldPath.strategy.child("positions", index: 1).child("weight"))
        #expect(error.field == "strategy.positions[1].weight")
        let strategyRoot = FieldPath("run_batch").child("variants", index: 3)
        let settingsRoot = FieldPath("run_batch").child("settings")
        #expect(error.rerooted(strategy: strategyRoot, settings: settingsRoot).field == "run_batch.variants[3].positions[1].weight")
        let settingsError = BacktestError.invalidArgument("x", at: FieldPath.settings.child("end_date"))
        #expect(settingsError.rerooted(strategy: strategyRoot, settings: settingsRoot).field == "run_batch.settings.end_date")
        let elsewhere = BacktestError.invalidArgument("x", field: "strategy_name")
        #expect(elsewhere.rerooted(strategy: strategyRoot, settings: settingsRoot).field == "strategy_name")
        #expect(BacktestError.invalidArgument("x").rerooted(strategy: strategyRoot, settings: settingsRoot).field == "")
    }

    /// `Ticker.validate` and `Ticker(validating:field:)` take the field as an autoclosure: it is
    /// evaluated only for an error, and the error names it exactly.
    @Test func tickerErrorsNameTheFieldAndBuildItOnlyThen() throws {
        var built = 0
        func field() -> String {
            built += 1
            return FieldPath.strategy.child("positions", index: 4).child("ticker").description
        }
        try Ticker.validate("AAPL", field: field())
        #expect(try Ticker(validating: "BRK.B", field: field()).symbol == "BRK.B")
        #expect(built == 0)
        #expect(throws: BacktestError.invalidArgument(
            "'aapl' is not a ticker symbol; a ticker is \(Ticker.syntax); did you mean AAPL?", field: "strategy.positions[4].ticker")) {
            try Ticker.validate("aapl", field: field())
        }
        #expect(throws: BacktestError.invalidArgument(
            "an empty string is not a ticker symbol; a ticker is \(Ticker.syntax)", field: "strategy.positions[4].ticker")) {
            _ = try Ticker(validating: "", field: field())
        }
        #expect(built == 2)
    }
}
