import BacktestCore
import BacktestEngine
import BacktestModel
import BacktestProtocol
@testable import BacktestService
import BacktestTestSupport
import Foundation
import Logging
import MarketData
import Testing

/// Issue 11, service side: grids expanded by the server, SUMMARY batches through SweepRunner,
/// coalesced streaming, re-attach, FULL on demand, the memory budget and NOT_FOUND reasons.
@Suite struct SweepBatchTests {
    static let base = Strategy(name: "cross", positions: [Position(
        ticker: "AAPL", weight: 1,
        entry: .compare(lhs: .series(SeriesRef(source: .indicator(IndicatorSpec(type: "sma", params: [5])))), op: .greater,
                        rhs: .series(SeriesRef(source: .indicator(IndicatorSpec(type: "sma", params: [110]))))))])

    static func grid(fast: String = "sma:5..24", slow: String = "sma:110..129") -> Grid {
        Grid(base: base, axes: [
            GridAxis(path: "positions[0].entry.lhs", range: fast),
            GridAxis(path: "positions[0].entry.rhs", range: slow),
        ])
    }

    static func service(jobs: BatchJobRegistry = BatchJobRegistry()) throws -> EngineBacktestService {
        var logger = Logger(label: "test.sweep")
        logger.logLevel = .critical
        let pipeline = BacktestPipeline(source: try LocalFilesProvider(directory: SharedData.dailyDirectory), cache: nil, logger: logger)
        return EngineBacktestService(pipeline: pipeline, jobs: jobs, maxParallel: 2, serverVersion: "test")
    }

    /// Collects a batch's streamed updates.
    actor Updates {
        var all: [ProgressUpdate] = []
        func add(_ update: ProgressUpdate) { all.append(update) }
    }

    func run(_ request: BatchRequest, on service: EngineBacktestService) async throws -> [ProgressUpdate] {
        let updates = Updates()
        try await service.runBatch(request, context: CallContext(streamID: 1)) { await updates.add($0) }
        return await updates.all
    }

    @Test func serverGridExpansionEqualsTheCLIs() throws {
        let grid = Grid(base: Self.base, axes: [
            GridAxis(path: "positions[0].entry.lhs", values: ["sma:5", "ema:7"], range: "sma:8..9"),
            GridAxis(path: "commission_bps", values: ["1", "2.5"]),
            GridAxis(path: "positions[*].weight", values: ["0.5", "1"]),
            GridAxis(path: "positions[0].entry.op", values: [">", "crosses_above"]),
        ])
        let plan = try GridPlan(grid)
        let document = try JSONEncoder().encode(Self.base)
        let cli = try VariantExpansion.expand(base: document, vary: grid.axes.map {
            VaryOption(path: try JSONPath(parsing: $0.path), values: try $0.allValues().map(JSONValue.commandLine))
        })
        #expect(plan.count == cli.count)
        #expect(plan.count == 4 * 2 * 2 * 2)
        for index in 0..<plan.count {
            #expect(try plan.strategy(index) == cli[index].strategy, "variant \(index)")
        }
        #expect(plan.parameters(of: 1).map(\.value) == ["sma:5", "1", "0.5", "crosses_above"])
        // The same through the JSON fallback (a path StrategySlot does not handle: id).
        let zipped = try GridPlan(Grid(base: Self.base, axes: [
            GridAxis(path: "positions[0].entry.lhs", values: ["sma:5", "sma:6"], zipGroup: 1),
            GridAxis(path: "positions[0].entry.rhs", values: ["sma:50", "sma:60"], zipGroup: 1),
        ]))
        #expect(zipped.count == 2)
        #expect(zipped.parameters(of: 1).map(\.value) == ["sma:6", "sma:60"])
    }

    /// A grid over the variant limit says its size and the axes' (a tester's message gave neither).
    @Test func aGridOverTheLimitSaysItsSize() {
        let error = #expect(throws: BacktestError.self) {
            _ = try GridPlan(Grid(base: Self.base, axes: [
                GridAxis(path: "positions[0].entry.lhs", range: "sma:1..2000"),
                GridAxis(path: "positions[0].entry.rhs", range: "sma:1..1000"),
            ]), field: "run_batch.grid")
        }
        #expect(error?.field == "run_batch.grid.axes")
        #expect(error?.message == "the grid has 2000000 variants (2000 x 1000), more than the 1000000 allowed; use fewer values or zip axes together")
    }

    @Test func rangesAndBadAxesNameTheirField() throws {
        #expect(try GridAxis.expandRange("sma:5..8", field: "x") == ["sma:5", "sma:6", "sma:7", "sma:8"])
        #expect(try GridAxis.expandRange("0.25..1/0.25", field: "x") == ["0.25", "0.5", "0.75", "1"])
        #expect(try GridAxis(parsing: "positions[0].entry.lhs=sma:5..6,ema:9").values == ["sma:5", "sma:6", "ema:9"])
        let reversed = #expect(throws: BacktestError.self) { try GridAxis.expandRange("sma:9..5", field: "run_batch.grid.axes[0].range") }
        #expect(reversed?.field == "run_batch.grid.axes[0].range")
        let badValue = #expect(throws: BacktestError.self) {
            try GridPlan(Grid(base: Self.base, axes: [GridAxis(path: "positions[0].entry.op", values: [">", "bigger"])]), field: "run_batch.grid")
        }
        #expect(badValue?.field == "run_batch.grid.axes[0].values[1]")
        let setting = #expect(throws: BacktestError.self) {
            try GridPlan(Grid(base: Self.base, axes: [GridAxis(path: "start", values: ["2010-01-04"])]))
        }
        #expect(setting?.code == .invalidArgument)
    }

    /// A range-shaped item with a bad size, order or step says which (it used to fall through to
    /// "parameter '5..2000000' is not a number"), naming the axis; its neighbours still expand.
    @Test(arguments: [
        ("sma:5..2000000", "too large: 1999996 values, more than the limit of 1000000"),
        ("1..1e300", "more than the limit of 1000000"),
        ("sma:10..1", "the end 1 is before the start 10"),
        ("sma:1..10/0", "the step must be positive (it is 0)"),
        ("sma:1..10/-2", "the step must be positive (it is -2)"),
        ("sma:1..10/x", "the step 'x' is not a number"),
    ])
    func aBadRangeSaysWhatIsWrongNamingTheAxis(range: String, why: String) throws {
        let cli = #expect(throws: BacktestError.self) {
            try GridAxis(parsing: "positions[0].entry.lhs=\(range)", field: "run_batch.grid.axes[1]")
        }
        #expect(cli?.code == .invalidArgument)
        #expect(cli?.field == "run_batch.grid.axes[1]")
        #expect(cli?.message.contains(why) == true, "\(cli?.message ?? "")")
        #expect(cli?.message.contains("not a number") == (why.contains("not a number")), "\(cli?.message ?? "")")
        #expect(cli?.message.hasPrefix("--grid 'positions[0].entry.lhs': range ") == true, "\(cli?.message ?? "")")
        let withoutField = #expect(throws: BacktestError.self) { try GridAxis(parsing: "positions[0].entry.lhs=\(range)") }
        #expect(withoutField?.field == "positions[0].entry.lhs")
        let server = #expect(throws: BacktestError.self) {
            try GridPlan(Grid(base: Self.base, axes: [GridAxis(path: "positions[0].entry.lhs", range: range)]), field: "run_batch.grid")
        }
        #expect(server?.field == "run_batch.grid.axes[0].range")
        #expect(server?.message.contains(why) == true, "\(server?.message ?? "")")
    }

    /// Neighbours: the largest range, a fractional step and a one-value range expand; a text that
    /// only looks like a range (no numbers) stays a value.
    @Test func rangesAtTheirLimitsExpand() throws {
        #expect(try GridAxis.expandRange("1..1000000", field: "x").count == GridAxis.maxRangeValues)
        #expect(try GridAxis.expandRange("sma:7..7", field: "x") == ["sma:7"])
        #expect(try GridAxis(parsing: "positions[0].entry.lhs=sma:1..2/0.5").values == ["sma:1", "sma:1.5", "sma:2"])
        #expect(try GridAxis(parsing: "name=a..b").values == ["a..b"])
        // For a request the server expands, a last range stays a range (checked, not expanded).
        let compact = try GridAxis(parsing: "positions[0].entry.lhs=sma:2..3,ema:4,sma:5..1000000", rangesExpanded: false)
        #expect(compact.values == ["sma:2", "sma:3", "ema:4"])
        #expect(compact.range == "sma:5..1000000")
        #expect(try compact.valueCount() == 3 + 999_996)
        #expect(throws: BacktestError.self) { try GridAxis(parsing: "x=sma:9..5", rangesExpanded: false) }
        // A range sent as a range is named as the server names it (a tester's 0..1000000 was
        // named `run_batch.grid.axes[0]`).
        let tooMany = #expect(throws: BacktestError.self) {
            try GridAxis(parsing: "commission_bps=0..1000000", field: "run_batch.grid.axes[0]", rangesExpanded: false)
        }
        #expect(tooMany?.field == "run_batch.grid.axes[0].range")
    }

    @Test func summaryBatchEqualsFullResultsToTheBitAndStreamsEachVariantOnceThenFinal() async throws {
        let service = try Self.service()
        let grid = Self.grid()  // 400 variants: SUMMARY by default
        let updates = try await run(BatchRequest(grid: grid, settings: BatchFixture.tenYears), on: service)
        let final = try #require(updates.last)
        #expect(final.state == .final)
        #expect(final.results.isEmpty)
        let results = updates.dropLast().flatMap(\.results)
        #expect(results.count == 400)
        #expect(Set(results.map(\.index)) == Set(0..<400), "every variant exactly once")
        #expect(updates.count - 1 < 400, "results finishing together share an update")
        #expect(updates.dropLast().map(\.completed) == updates.dropLast().map(\.completed).sorted())

        // FULL for a sample, through the FULL path of a listed batch.
        let plan = try GridPlan(grid)
        let sample = [0, 17, 211, 399]
        let full = try await run(
            BatchRequest(variants: try sample.map { try plan.strategy($0) }, settings: BatchFixture.tenYears, detail: .full), on: service)
        let fullResults = full.flatMap(\.results)
        for (position, index) in sample.enumerated() {
            let summary = try #require(results.first { $0.index == index })
            guard case .summary(let s) = summary.detail else { Issue.record("variant \(index) is not a summary"); continue }
            let reference = try #require(fullResults.first { $0.index == position }).outcome.get()
            #expect(s.metrics == reference.metrics, "variant \(index)")
            #expect(s.benchmarkMetrics == reference.benchmarkMetrics)
            #expect(s.finalEquity.bitPattern == reference.finalEquity.bitPattern)
            #expect(s.orderCount == reference.orders.count)
            #expect(s.warnings == reference.warnings)
            #expect(summary.parameters == plan.parameters(of: index))
        }

        // FULL on demand: by index, and the best 3 by Sharpe.
        let onDemand = try await service.variantResults(batchID: final.batchID, selection: .indices([211]), context: CallContext(streamID: 3))
        let recomputed = try #require(onDemand.first).outcome.get()
        let reference = try #require(fullResults.first { $0.index == 2 }).outcome.get()
        #expect(recomputed.equity == reference.equity)
        #expect(recomputed.orders == reference.orders)
        #expect(onDemand.first?.parameters == plan.parameters(of: 211))
        let best = try await service.variantResults(batchID: final.batchID, selection: .best(.sharpe, count: 3), context: CallContext(streamID: 5))
        let sharpes = results.compactMap { $0.summary.map { ($0.metrics.sharpe, 0) } }.map(\.0).sorted(by: >)
        #expect(best.count == 3)
        #expect(try best.map { try $0.outcome.get().metrics.sharpe } == Array(sharpes.prefix(3)))
    }

    @Test func aLargeBatchReattachesAndReadsEverySummary() async throws {
        let service = try Self.service()
        let updates = try await run(BatchRequest(grid: Self.grid(fast: "sma:5..44", slow: "sma:110..159"), settings: BatchFixture.tenYears), on: service)
        let id = try #require(updates.first?.batchID)
        var known = Set<Int>()
        var answers = 0
        while true {
            let status = try await service.batchStatus(id: id, knownIndices: known, context: CallContext(streamID: 7))
            answers += 1
            known.formUnion(status.results.map(\.index))
            #expect(status.state == .final)
            if known.count >= status.completed { break }
            #expect(!status.results.isEmpty)
        }
        #expect(known == Set(0..<2000))
        #expect(answers >= 1)
    }

    @Test func notFoundSaysExpiredEvictedOrUnknown() async throws {
        let registry = BatchJobRegistry(retention: .seconds(60), maxRetainedBytes: 600, budgetBytes: 1_500)
        let expired = await registry.create(total: 1)
        _ = await expired.record(VariantResult(index: 0, outcome: .failure(BacktestError(.internal, "x"))))
        await expired.finish(.final)
        await registry.dropExpired(now: .now.advanced(by: .seconds(120)))
        let e1 = await #expect(throws: BacktestError.self) { try await registry.job(id: expired.id) }
        #expect(e1?.code == .notFound)
        #expect(e1?.message.contains("expired") == true)

        let first = await registry.create(total: 1)
        _ = await first.record(VariantResult(index: 0, outcome: .failure(BacktestError(.internal, "x"))))
        await first.finish(.final)
        // Evicted when a running batch needs the room.
        _ = try await registry.admit(total: 1, source: BatchAdmissionTests.source, estimatedBytes: 1_400)
        let e2 = await #expect(throws: BacktestError.self) { try await registry.job(id: first.id) }
        #expect(e2?.message.contains("evicted") == true)

        let e3 = await #expect(throws: BacktestError.self) { try await registry.job(id: "0123456789abcdef0123456789abcdef") }
        #expect(e3?.message.contains("no batch with id") == true)
    }

    @Test func theBudgetRefusesWhatDoesNotFitNamingIt() async throws {
        let registry = BatchJobRegistry(budgetBytes: 1_000 * SummaryStore.bytesPerSummary)
        let service = try Self.service(jobs: registry)
        let tooLarge = BatchRequest(grid: Self.grid(fast: "sma:5..54", slow: "sma:110..159"), settings: BatchFixture.tenYears)
        let error = await #expect(throws: BacktestError.self) { try await run(tooLarge, on: service) }
        #expect(error?.code == .resourceExhausted)
        #expect(error?.message.contains("budget") == true)
        // A batch that fits runs, and its reservation is released when it ends.
        let fits = try await run(BatchRequest(grid: Self.grid(), settings: BatchFixture.tenYears), on: service)
        #expect(fits.last?.state == .final)
    }

    @Test func fullResultsOverTheRetainedBytesBecomeSummariesNotLost() async throws {
        let registry = BatchJobRegistry(maxRetainedBytes: 64 * 1024)
        let service = try Self.service(jobs: registry)
        let updates = try await run(
            BatchRequest(variants: BatchFixture.smaVariants(8), settings: BatchFixture.tenYears, detail: .full), on: service)
        let id = try #require(updates.last?.batchID)
        let status = try await service.batchStatus(id: id, knownIndices: [], context: CallContext(streamID: 9))
        #expect(status.results.count == 8)
        #expect(status.results.allSatisfy { if case .summary = $0.detail { true } else { false } })
    }
}
