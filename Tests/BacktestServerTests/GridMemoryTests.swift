import BacktestCore
import BacktestEngine
import BacktestModel
@testable import BacktestService
import BacktestTestSupport
import Foundation
import Testing

/// Issue 12, the fourth tester's grid findings: a grid keeps per axis value its text and decoded
/// piece, not a whole strategy; the shared phase analyses one strategy per distinct analysis
/// input; summaries grow in chunks and are read without building every result; an axis path
/// that does not fit the base is the path's error, not its first value's.
@Suite struct GridMemoryTests {
    static let base = SweepBatchTests.base

    // MARK: Paths and values name their own fields

    /// The tester's case (`positions[0].bogus`, reported under `values[0]` as "unknown key …
    /// in strategy file") and its neighbours: an unknown key at the root, inside a condition, an
    /// index out of range, a step through a value that is not an object, a missing parent.
    @Test(arguments: [
        ("positions[0].bogus", "unknown key 'bogus' in position"),
        ("bogus", "unknown key 'bogus' in strategy file"),
        ("positions[0].entry.bogus", "unknown key 'bogus' in comparison"),
        ("positions[5].weight", "index 5 is out of range"),
        ("positions[0].entry.lhs.bogus", "is a string, not an object with key 'bogus'"),
        ("settings.x", "the strategy has no key 'settings'"),
        ("positions[*].bogus", "unknown key 'bogus' in position"),
    ])
    func aPathThatDoesNotFitTheBaseNamesThePath(path: String, why: String) {
        let error = #expect(throws: BacktestError.self) {
            try GridPlan(Grid(base: Self.base, axes: [
                GridAxis(path: "commission_bps", values: ["1", "2"]),
                GridAxis(path: path, values: ["1", "2"]),
            ]), field: "run_batch.grid")
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.field == "run_batch.grid.axes[1].path")
        #expect(error?.message.contains(why) == true, "\(error?.message ?? "")")
    }

    /// Keys the base leaves out but the strategy file knows are paths like any other (a stop
    /// level on a base without one, the position's direction); a bad value there names the value.
    @Test func aKnownKeyTheBaseLacksIsAPathAndABadValueNamesTheValue() throws {
        let plan = try GridPlan(Grid(base: Self.base, axes: [
            GridAxis(path: "positions[0].stop_loss", values: ["0.05", "0.1"]),
            GridAxis(path: "positions[0].direction", values: ["long", "short"]),
        ]), field: "run_batch.grid")
        #expect(plan.count == 4)
        #expect(try plan.strategy(3).positions[0].exits.stopLoss == 0.1)
        #expect(try plan.strategy(3).positions[0].direction == .short)
        let stop = #expect(throws: BacktestError.self) {
            try GridPlan(Grid(base: Self.base, axes: [GridAxis(path: "positions[0].stop_loss", values: ["0.05", "abc"])]), field: "run_batch.grid")
        }
        #expect(stop?.field == "run_batch.grid.axes[0].values[1]")
    }

    /// A value of the wrong JSON type says what was wanted and what was found, without
    /// Foundation's "Expected to decode String but found number instead.", and for a string how
    /// to write one that parses as a number.
    @Test func aValueOfTheWrongTypeSaysWhatItWantedAndFound() {
        let name = #expect(throws: BacktestError.self) {
            try GridPlan(Grid(base: Self.base, axes: [GridAxis(path: "name", values: ["a", "1"])]), field: "run_batch.grid")
        }
        #expect(name?.field == "run_batch.grid.axes[0].values[1]")
        #expect(name?.message.contains("expected a string, found a number") == true, "\(name?.message ?? "")")
        #expect(name?.message.contains("for the string 1") == true, "\(name?.message ?? "")")
        #expect(name?.message.contains("Expected to decode") == false)
        let weight = #expect(throws: BacktestError.self) {
            try GridPlan(Grid(base: Self.base, axes: [GridAxis(path: "positions[0].weight", values: ["0.5", "heavy"])]), field: "run_batch.grid")
        }
        #expect(weight?.field == "run_batch.grid.axes[0].values[1]")
        #expect(weight?.message.contains("expected a number, found a string") == true, "\(weight?.message ?? "")")
        let entry = #expect(throws: BacktestError.self) {
            try GridPlan(Grid(base: Self.base, axes: [GridAxis(path: "positions[0].entry", values: ["3"])]), field: "run_batch.grid")
        }
        #expect(entry?.message.contains("Expected to decode") == false, "\(entry?.message ?? "")")
    }

    // MARK: Analysis strategies, built on demand

    /// `analysisStrategy(i)` is the base with one axis value applied, axis by axis, through typed
    /// slots and through the JSON fallback (a path no slot handles: `positions[*].entry.op`) alike.
    @Test(arguments: [false, true])
    func analysisStrategiesAreTheBaseWithOneValueApplied(overlapping: Bool) throws {
        var axes = [
            GridAxis(path: "positions[0].entry.lhs", values: ["sma:5", "ema:7"]),
            GridAxis(path: "commission_bps", values: ["1", "2.5", "4"]),
        ]
        if overlapping { axes.append(GridAxis(path: "positions[*].entry.op", values: [">=", "<"])) }
        let plan = try GridPlan(Grid(base: Self.base, axes: axes))
        #expect(plan.analysisCount == 1 + axes.reduce(0) { $0 + $1.values.count })
        #expect(plan.valueCounts == axes.map(\.values.count))
        let document = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(Self.base))
        #expect(try plan.analysisStrategy(0) == VariantExpansion.strategy(from: document, label: "base"))
        var i = 1
        for axis in axes {
            for value in axis.values {
                let edited = try JSONPath(parsing: axis.path).setting(JSONValue.commandLine(value), in: document)
                #expect(try plan.analysisStrategy(i) == VariantExpansion.strategy(from: edited, label: value), "\(axis.path)=\(value)")
                i += 1
            }
        }
    }

    /// The shared phase validates every axis value (each is counted once) but keeps one strategy
    /// per distinct analysis input: a 5,000-value weight axis analyses the base alone; an
    /// indicator axis keeps each new indicator (sma:5 is the base's, so it is not new).
    @Test func theSharedPhaseKeepsWhatReadsSomethingNew() async throws {
        let observer = CountingObserver()
        let pipeline = try ExecutionPathTests.pipeline(observer: observer)
        let weights = try GridPlan(Grid(base: Self.base, axes: [GridAxis(path: "positions[0].weight", range: "0.0002..1/0.0002")]))
        #expect(weights.analysisCount == 5_001)
        let kept = try await pipeline.validate(grid: weights, settings: ExecutionPathTests.settings)
        #expect(kept.map(\.index) == [0])
        #expect(observer.validations.count == 5_001)
        #expect(observer.validations.values.allSatisfy { $0 == 1 })

        let indicators = try GridPlan(Grid(base: Self.base, axes: [
            GridAxis(path: "positions[0].entry.lhs", values: ["sma:5", "sma:6", "ema:6"]),
            GridAxis(path: "commission_bps", values: ["1", "2"]),
        ]))
        let distinct = try await pipeline.validate(grid: indicators, settings: ExecutionPathTests.settings)
        #expect(distinct.map(\.index) == [0, 2, 3])
        #expect(distinct.map(\.path.description) == ["run_batch.grid.base_strategy", "run_batch.grid.axes[0].values[1]", "run_batch.grid.axes[0].values[2]"])
    }

    /// An invalid value found by the streaming validation names the value, with the strategy
    /// field in the message, as before; invalid settings fail the call naming the settings.
    @Test func anInvalidValueNamesTheValueAndBadSettingsNameTheSettings() async throws {
        let pipeline = try ExecutionPathTests.pipeline(observer: CountingObserver())
        let plan = try GridPlan(Grid(base: Self.base, axes: [
            GridAxis(path: "commission_bps", values: ["1"]),
            GridAxis(path: "positions[0].weight", values: ["0.5", "2", "3"]),
        ]))
        let error = await #expect(throws: BacktestError.self) { try await pipeline.validate(grid: plan, settings: ExecutionPathTests.settings) }
        #expect(error?.field == "run_batch.grid.axes[1].values[1]")
        #expect(error?.message.hasPrefix("positions[0].weight: ") == true, "\(error?.message ?? "")")
        var settings = ExecutionPathTests.settings
        settings.initialCapital = -5
        let bad = await #expect(throws: BacktestError.self) { try await pipeline.validate(grid: plan, settings: settings) }
        #expect(bad?.field.hasPrefix("run_batch.settings") == true, "\(bad?.field ?? "")")
    }

    // MARK: Summaries in chunks

    static func summary(_ value: Double) -> BacktestSummary {
        var metrics = Metrics()
        metrics.sharpe = value
        return BacktestSummary(
            strategyName: "s", metrics: metrics, benchmarkMetrics: Metrics(), finalEquity: 100_000 + value, initialCapital: 100_000,
            orderCount: 2, warnings: [], stats: RunStatistics())
    }

    /// Across chunk boundaries (10,000 entries, 4,096 a chunk), in a finishing order that is not
    /// the index order, with failures among them: positions, pages, picks and ranking agree with
    /// the order of appending.
    @Test func summariesAcrossChunksReadAsAppended() {
        let store = SummaryStore()
        let total = 10_000
        let order = (0..<total).map { ($0 * 7_919) % total }  // a permutation: 7,919 is prime to 10,000
        for index in order {
            store.append(index, index % 1_000 == 3 ? .failure(BacktestError(.notFound, "no data")) : .success(Self.summary(Double(index))))
        }
        #expect(store.count == total)
        let view = store.view()
        let positions = view.positions(total: total + 5)
        #expect(positions.count == total + 5)
        for (position, index) in order.enumerated() where position % 97 == 0 || (4_090...4_100).contains(position) {
            #expect(positions[index] == Int32(position))
            #expect(view.result(at: position, parameters: { _ in [] }).index == index)
        }
        #expect(positions[total...].allSatisfy { $0 == -1 })
        let page = store.results(from: 4_090, maxCount: 12, parameters: { _ in [] })
        #expect(page.map(\.index) == Array(order[4_090..<4_102]))
        #expect(store.results(from: total - 3, maxCount: 10, parameters: { _ in [] }).count == 3)
        #expect(store.results(from: total, parameters: { _ in [] }).isEmpty)
        #expect(store.results(at: [8_191, 8_192, total], parameters: { _ in [] }).map(\.index) == [order[8_191], order[8_192]])
        let ranked = view.ranked { $0.metrics.sharpe }
        #expect(ranked.count == total - 10)
        #expect(ranked.allSatisfy { Double($0.index) == $0.value })
        // A view is the store when taken: later appends are not in it; a sealed store takes none.
        store.seal()
        store.append(total, .success(Self.summary(1)))
        #expect(store.count == total)
    }

    /// GetBatchStatus over a store larger than a chunk: by variant index, without what the caller
    /// knows, up to the byte bound (at least one), FULL results and summaries merged.
    @Test func aStatusReadIsByIndexWithoutTheKnownAndBounded() async {
        let total = 9_000
        let job = BatchJob(id: "j", total: total)
        for index in stride(from: total - 1, through: 1, by: -1) { job.summaries.append(index, .success(Self.summary(Double(index)))) }
        let all = await job.snapshot()
        #expect(all.results.map(\.index) == Array(1..<total))
        let known = Set(0..<5_000)
        let rest = await job.snapshot(excluding: known)
        #expect(rest.results.map(\.index) == Array(5_000..<total))
        let size = BatchJob.estimatedBytes(VariantResult(index: 0, detail: .summary(Self.summary(1))))
        let bounded = await job.snapshot(excluding: known, maxBytes: 10 * size)
        #expect(bounded.results.map(\.index) == Array(5_000..<5_010))
        let one = await job.snapshot(maxBytes: 1)
        #expect(one.results.map(\.index) == [1])
        #expect(one.completed == total - 1)
    }
}

extension GridMemoryTests {
    /// A large GetBatchStatus answer reserves what it holds while built and encoded from the
    /// request memory budget first (a hostile tester's 320 unread status reads of a 1,000,000-
    /// variant grid held 329 MB of built answers); a small one reserves nothing.
    @Test func aLargeStatusAnswerReservesItsMemoryFirst() async throws {
        let registry = BatchJobRegistry()
        let service = try SweepBatchTests.service(jobs: registry)
        let job = await registry.create(total: 9_000)
        for index in 0..<9_000 { job.summaries.append(index, .success(Self.summary(Double(index)))) }
        let budget = RequestMemoryBudget(bytes: 64 << 20)
        for (known, expected) in [(Set<Int>(), service.statusAnswerBytes * EngineBacktestService.builtAnswerFactor), (Set(0..<8_990), 0)] {
            let reservation = try await RequestMemoryBudget.Reservation(budget, amount: 0)
            let answer = try await RequestMemoryBudget.$current.withValue(reservation) {
                try await service.batchStatus(id: job.id, knownIndices: known, context: CallContext(streamID: 1))
            }
            #expect(!answer.results.isEmpty)
            #expect(reservation.amount == expected, "\(known.count) known")
            reservation.release()
        }
    }

    /// Admission counts a grid's axis values beside its summaries: a 20,000-value axis keeps a
    /// text and a decoded piece (boxed when large) per value, about 40 bytes.
    @Test func admissionCountsTheAxisValues() throws {
        let plan = try GridPlan(Grid(base: Self.base, axes: [GridAxis(path: "positions[0].weight", range: "0.00005..1/0.00005")]))
        #expect(plan.count == 20_000)
        #expect(plan.valueBytes >= 20_000 * 16)
        #expect(plan.valueBytes <= 20_000 * 48)
        let source = BatchSource(settings: ExecutionPathTests.settings, variants: [], grid: plan, detail: .summary)
        #expect(EngineBacktestService.estimatedBytes(source, frameLimit: nil) == 20_000 * SummaryStore.bytesPerSummary + plan.heldBytes)
        // Its one base position, once or twice (as sent and as decoded), no JSON document.
        #expect([1, 2].map { plan.valueBytes + $0 * GridPlan.bytesPerPosition }.contains(plan.heldBytes), "\(plan.heldBytes)")
        // Long texts count their bytes.
        let long = try GridPlan(Grid(base: Self.base, axes: [GridAxis(path: "name", values: [String(repeating: "n", count: 100), "short"])]))
        #expect(long.valueBytes >= 100 + 2 * 16)
    }
}

extension GridMemoryTests {
    /// Plain numbers skip the strategy decoder (a 700,000-value range took 29 s of CPU to
    /// resolve): the variants equal the decoder's, and what the decoder would refuse still goes
    /// through it (a stop of 0 or below, a number too large to be finite), naming the value.
    @Test func plainNumbersResolveWithoutTheDecoderToTheSameVariants() throws {
        let axes = [
            GridAxis(path: "positions[0].stop_loss", values: ["0.05", "0.1", "0.2"]),
            GridAxis(path: "slippage_bps", values: ["0", "3.25"]),
            GridAxis(path: "positions[*].weight", values: ["0.5", "1"]),
        ]
        let plan = try GridPlan(Grid(base: Self.base, axes: axes))
        let cli = try VariantExpansion.expand(base: try JSONEncoder().encode(Self.base), vary: axes.map {
            VaryOption(path: try JSONPath(parsing: $0.path), values: $0.values.map(JSONValue.commandLine))
        })
        #expect(plan.count == cli.count)
        for index in 0..<plan.count { #expect(try plan.strategy(index) == cli[index].strategy, "variant \(index)") }
        for (values, bad) in [(["0.05", "0"], 1), (["0.05", "0.1", "-0.1"], 2), (["0.05", "1e400"], 1)] {
            let error = #expect(throws: BacktestError.self) {
                try GridPlan(Grid(base: Self.base, axes: [GridAxis(path: "positions[0].stop_loss", values: values)]), field: "run_batch.grid")
            }
            #expect(error?.field == "run_batch.grid.axes[0].values[\(bad)]", "\(values)")
        }
    }

    /// Resolving stops at a cancelled call's flag, CANCELLED, before its next value.
    @Test func resolvingAGridStopsWhenCancelled() {
        let flag = CancellationFlag()
        flag.cancel()
        let error = #expect(throws: BacktestError.self) {
            try GridPlan(Grid(base: Self.base, axes: [GridAxis(path: "commission_bps", range: "1..100000")]), cancellation: flag)
        }
        #expect(error?.code == .cancelled)
    }
}

/// The fifth tester's grid findings: sizes refused before values are made, echoed texts bounded,
/// names, paths and values bounded so every result fits a frame, tickers as a request's.
@Suite struct GridBoundsTests {
    static let base = SweepBatchTests.base

    /// 1,000,000-value ranges are counted, not expanded, so a grid over the limit is refused at
    /// once whatever its values (a `name` range took 44 s of CPU per 156-byte request); the
    /// count equals the expansion's.
    @Test func aGridIsCountedWithoutExpandingItsRanges() throws {
        for range in ["a1..1000000", "1..1000000", "0.25..1/0.25", "sma:5..104", "1..10/3"] {
            let axis = GridAxis(path: "name", values: ["x", "y"], range: range)
            #expect(try axis.valueCount() == axis.allValues().count, "\(range)")
        }
        let clock = ContinuousClock()
        let started = clock.now
        let error = #expect(throws: BacktestError.self) {
            try GridPlan(Grid(base: Self.base, axes: [
                GridAxis(path: "name", range: "a1..1000000"),
                GridAxis(path: "commission_bps", values: ["1", "2"]),
            ]), field: "run_batch.grid")
        }
        #expect(error?.field == "run_batch.grid.axes")
        #expect(error?.message.contains("2000000 variants (1000000 x 2)") == true)
        #expect(try GridPlan.count(of: Grid(base: Self.base, axes: [GridAxis(path: "name", range: "a1..1000"), GridAxis(path: "commission_bps", range: "1..3")])) == 3_000)
        _ = clock.now - started  // no timing asserted: the test documents the path, the README the time
    }

    /// A SUMMARY grid over the batch budget is refused before it is resolved, with advice that
    /// fits SUMMARY (it said "ask for SUMMARY detail" to a SUMMARY grid).
    @Test func aSummaryGridOverTheBudgetIsToldToSplitNotToAskForSummary() async throws {
        let registry = BatchJobRegistry(budgetBytes: 1_000 * SummaryStore.bytesPerSummary)
        let service = try SweepBatchTests.service(jobs: registry)
        let grid = Grid(base: Self.base, axes: [GridAxis(path: "commission_bps", range: "1..5000")])
        let error = await #expect(throws: BacktestError.self) {
            try await service.runBatch(BatchRequest(grid: grid, settings: BatchFixture.tenYears), context: CallContext(streamID: 1)) { _ in }
        }
        #expect(error?.code == .resourceExhausted)
        #expect(error?.message.contains("split it into batches of fewer variants") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("SUMMARY") == false)
        #expect(registry.reservedBytes == 0)
        // Its values count too, before they are made: 1,000 summaries fit, not with 1,000 values.
        #expect(GridPlan.minimumValueBytes(of: grid) == 5_000 * 40)
        let values = await #expect(throws: BacktestError.self) {
            try await service.runBatch(
                BatchRequest(grid: Grid(base: Self.base, axes: [GridAxis(path: "commission_bps", range: "1..1000")]), settings: BatchFixture.tenYears),
                context: CallContext(streamID: 2)) { _ in }
        }
        #expect(values?.code == .resourceExhausted)
    }

    /// A long value or path is echoed as a bounded, escaped prefix (a 4 MB value came back in a
    /// 4 MB message, and a 4 MB path pushed the answer past the frame).
    @Test func echoedPathsAndValuesAreBounded() {
        let long = String(repeating: "z", count: 3_000) + "\u{202E}"
        let value = #expect(throws: BacktestError.self) {
            try GridPlan(Grid(base: Self.base, axes: [GridAxis(path: "positions[0].entry", values: [long])]), field: "run_batch.grid")
        }
        #expect(value?.field == "run_batch.grid.axes[0].values[0]")
        #expect((value?.message.utf8.count ?? .max) < 400, "\(value?.message.utf8.count ?? 0) bytes")
        let path = #expect(throws: BacktestError.self) {
            try GridPlan(Grid(base: Self.base, axes: [GridAxis(path: "positions[0]." + String(repeating: "k", count: 200), values: ["1"])]), field: "run_batch.grid")
        }
        #expect(path?.field == "run_batch.grid.axes[0].path")
        #expect((path?.message.utf8.count ?? .max) < 400, "\(path?.message.utf8.count ?? 0) bytes")
        #expect(shownInput("a\u{202E}b") == "a\\u{202E}b")
    }

    /// Names, paths and values have the documented bounds, so any one result fits a frame: a
    /// 2.5 MB name value made every update 5 MB and the batch unreadable.
    @Test func namesPathsAndValuesAreBounded() {
        func refusal(_ grid: Grid) -> BacktestError? {
            #expect(throws: BacktestError.self) { try GridPlan(grid, field: "run_batch.grid") }
        }
        var named = Self.base
        named.name = String(repeating: "n", count: 257)
        #expect(refusal(Grid(base: named, axes: [GridAxis(path: "commission_bps", values: ["1"])]))?.field == "run_batch.grid.base_strategy.name")
        let longName = refusal(Grid(base: Self.base, axes: [GridAxis(path: "name", values: ["a", String(repeating: "n", count: 257)])]))
        #expect(longName?.field == "run_batch.grid.axes[0].values[1]")
        #expect(longName?.message.contains("at most 256") == true, "\(longName?.message ?? "")")
        #expect(refusal(Grid(base: Self.base, axes: [GridAxis(path: "name", values: [String(repeating: "v", count: 4_097)])]))?.field == "run_batch.grid.axes[0].values[0]")
        #expect(refusal(Grid(base: Self.base, axes: [GridAxis(path: String(repeating: "p", count: 257), values: ["1"])]))?.field == "run_batch.grid.axes[0].path")
        let many = (0..<20).map { GridAxis(path: "name", values: [String(repeating: "v", count: 4_000)], zipGroup: 1 + $0) }
        let total = refusal(Grid(base: Self.base, axes: many))
        // The same path twice is refused first; with distinct paths, the total bound.
        #expect(total?.field == "run_batch.grid.axes[1].path")
        let distinct = (0..<20).map { i in GridAxis(path: "positions[0].entry", values: [#"{"lhs": "close", "op": ">", "rhs": \#(i)}"# + String(repeating: " ", count: 4_000)], zipGroup: 0) }
        let bounded = refusal(Grid(base: Self.base, axes: distinct))
        #expect(bounded?.field == "run_batch.grid.axes[1].path", "the same path again")
        // Names of exactly 256 bytes are fine.
        #expect(throws: Never.self) {
            _ = try GridPlan(Grid(base: Self.base, axes: [GridAxis(path: "name", values: ["a", String(repeating: "n", count: 256)])]))
        }
    }

    /// The per-variant total of paths and values: 17 distinct paths with 4,000-byte values pass
    /// 64 KiB at the 17th (checked before any value is decoded).
    @Test func aVariantsParametersAreBoundedInTotal() {
        let paths = ["name", "id", "fill", "commission_bps", "slippage_bps", "rebalance", "allow_leverage"]
            + ["ticker", "weight", "entry", "exit", "direction", "sizing", "size", "stop_loss", "take_profit", "trailing_stop"].map { "positions[0].\($0)" }
        #expect(paths.count == 17)
        let axes = paths.map { GridAxis(path: $0, values: [String(repeating: " ", count: 3_999) + "1"]) }
        let error = #expect(throws: BacktestError.self) { try GridPlan(Grid(base: Self.base, axes: axes), field: "run_batch.grid") }
        #expect(error?.field == "run_batch.grid.axes")
        #expect(error?.message.contains("at most 65536") == true, "\(error?.message ?? "")")
    }

    /// Tickers in values follow the request syntax (upper case), as a RunBacktest's do; so does
    /// the base's, checked as sent.
    @Test func tickersInValuesAndTheBaseAreCheckedAsSent() async throws {
        let ticker = #expect(throws: BacktestError.self) {
            try GridPlan(Grid(base: Self.base, axes: [GridAxis(path: "positions[0].ticker", values: ["MSFT", "aapl"])]), field: "run_batch.grid")
        }
        #expect(ticker?.field == "run_batch.grid.axes[0].values[1]")
        #expect(ticker?.message.contains("did you mean AAPL?") == true, "\(ticker?.message ?? "")")
        let inside = #expect(throws: BacktestError.self) {
            try GridPlan(Grid(base: Self.base, axes: [GridAxis(path: "positions[0].entry", values: [#"{"lhs": "close", "op": ">", "rhs": "sma:20", "ticker": "spy"}"#])]), field: "run_batch.grid")
        }
        #expect(inside?.field == "run_batch.grid.axes[0].values[0]")
        var lower = Self.base
        lower.positions[0].ticker = "aapl"
        let plan = try GridPlan(Grid(base: lower, axes: [GridAxis(path: "commission_bps", values: ["1", "2"])]))
        let pipeline = try ExecutionPathTests.pipeline(observer: CountingObserver())
        let base = await #expect(throws: BacktestError.self) { try await pipeline.validate(grid: plan, settings: ExecutionPathTests.settings) }
        #expect(base?.field == "run_batch.grid.base_strategy.positions[0].ticker", "\(base?.field ?? "")")
    }
}

extension GridBoundsTests {
    /// The same place spelled two ways is the same path (a sixth tester's `positions[00].weight`
    /// beside `positions[0].weight` was accepted, the last axis winning).
    @Test func theSamePathSpelledTwoWaysIsRefused() {
        for second in ["positions[00].weight", "positions[+0].weight", "positions[0].weight"] {
            let error = #expect(throws: BacktestError.self) {
                try GridPlan(Grid(base: Self.base, axes: [
                    GridAxis(path: "positions[0].weight", values: ["0.5"]),
                    GridAxis(path: second, values: ["0.6"]),
                ]), field: "run_batch.grid")
            }
            #expect(error?.field == "run_batch.grid.axes[1].path", "\(second): \(error?.message ?? "")")
        }
    }
}
