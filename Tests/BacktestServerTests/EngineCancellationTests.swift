import BacktestClient
import BacktestCore
import BacktestEngine
import BacktestModel
import BacktestProtocol
import BacktestRawClient
@testable import BacktestService
import BacktestTestSupport
import Foundation
import Logging
import MarketData
import NIOCore
import Testing

/// Issue 12, failure 2: work that outlived its call. A heavy single RunBacktest (2,000
/// positions over ten years, rebalanced daily: a minute or more of CPU uncancelled in a debug
/// build, while its shared phase is short) whose call ends
/// by its deadline, by CANCEL or by the client closing the socket must stop computing: the engine
/// sees its `CancellationFlag` and ends early (`ComputeThreads.counts.stoppedEarly`), and the one
/// compute thread is free, so the next call completes. The same for a SUMMARY sweep stopped by
/// CancelBatch in the middle of its only chunk (issue 11). No timing is asserted: the checks are
/// the engine's own report and a next call that completes.
///
/// Serialized: the server decodes, validates and analyses each request on its call's task (the
/// cooperative pool), seconds for thousands of positions in a debug build; one at a time leaves
/// the pool to the other suites running in parallel.
@Suite("The engine stops when its call ends", .serialized, .timeLimit(.minutes(5)))
struct EngineCancellationTests {
    static let settings = BacktestSettings(start: TradingDate(iso: "2010-01-04")!, end: TradingDate(iso: "2019-12-31")!)
    static let tickers = ["AAPL", "MSFT", "XOM", "JPM", "JNJ", "PG", "KO", "INTC", "CSCO", "WMT"]

    static func indicator(_ key: String) -> Operand {
        .series(SeriesRef(source: .indicator(try! IndicatorSpec(parsing: key))))
    }

    static func heavy(positions: Int = 2_000, name: String = "heavy") -> Strategy {
        Strategy(
            name: name,
            positions: (0..<positions).map { p in
                Position(
                    ticker: tickers[p % tickers.count], weight: 1 / Double(positions),
                    entry: .compare(lhs: indicator("sma:20"), op: .greater, rhs: indicator("sma:50")),
                    exit: .compare(lhs: indicator("rsi:14"), op: .greater, rhs: .number(70)))
            },
            fill: .nextOpen, commissionBps: 1, slippageBps: 1, rebalance: .daily)
    }

    static let light = Strategy(name: "light", positions: [Position(
        ticker: "AAPL", weight: 1, entry: .compare(lhs: indicator("sma:20"), op: .greater, rhs: indicator("sma:50")))])

    /// A service on local files whose simulations run on `threads` (one thread, counted).
    /// With `endless`, the engine runs until its flag stops it (`EndlessEngine`), so a deadline
    /// always falls inside the simulation however fast the machine is.
    /// `probe` sees each simulation start (the real engine's, through `ProbedEngine`).
    static func service(_ threads: ComputeThreads, endless: Bool = false, probe: EngineProbe = EngineProbe()) throws -> EngineBacktestService {
        var logger = Logger(label: "test.cancellation")
        logger.logLevel = .critical
        let pipeline = BacktestPipeline(
            source: try LocalFilesProvider(directory: SharedData.dailyDirectory), cache: nil,
            engines: endless ? EngineSelection(primary: EndlessEngine()) : EngineSelection(primary: ProbedEngine(probe: probe)), logger: logger,
            computeThreads: threads)
        return EngineBacktestService(pipeline: pipeline, maxParallel: 1, serverVersion: "test")
    }

    static func runBacktest(_ strategy: Strategy, timeoutMs: UInt32 = 0) -> CallRequest {
        CallRequest(header: RequestHeader(timeoutMs: timeoutMs), method: .runBacktest(BacktestRequest(strategy: strategy, settings: settings)))
    }

    enum Ending: String, CaseIterable, Sendable { case deadline, cancel, disconnect }

    @Test(arguments: Ending.allCases)
    func aHeavyBacktestStopsWhenItsCallEnds(_ ending: Ending) async throws {
        let threads = ComputeThreads(numberOfThreads: 1)
        let probe = EngineProbe()
        try await withServer(service: try Self.service(threads, endless: ending == .deadline, probe: probe)) { _, port in
            let (connection, _) = try await RawConnection.handshake(port: port)
            // The deadline: long enough for the shared phase (data, validation and analysis take a
            // few seconds in a debug build); the simulation then runs until stopped
            // (`EndlessEngine`). On a machine loaded enough that the shared phase outlasts it, the
            // call stops there instead and its simulation must never start (checked below).
            try await connection.sendRequest(1, Self.runBacktest(Self.heavy(), timeoutMs: ending == .deadline ? 20_000 : 0))
            var simulationStarted = true
            // A call this large is validated, analysed and its indicators computed on the compute
            // threads too (`BacktestPipeline.cpuWork`): the simulation is their last piece of
            // work, counted when the engine says it started.
            var simulation = 0
            #expect(Self.heavy().positions.count > BacktestPipeline.offloadPositions)
            switch ending {
            case .deadline:
                let frame = try #require(await connection.nextFrame(where: { $0.type == .response }))
                let status = try CallResponse.decode(frame.payload).status
                #expect(status.code == .deadlineExceeded, "\(status)")
                simulationStarted = threads.counts.started > 0 && threads.counts.finished < threads.counts.started
                simulation = threads.counts.started
            case .cancel:
                try await poll(timeout: .seconds(120)) { probe.started.contains("heavy") }
                simulation = threads.counts.started
                try await connection.send(Frame(type: .cancel, streamID: 1, payload: CancelMessage().encoded()))
            case .disconnect:
                try await poll(timeout: .seconds(120)) { probe.started.contains("heavy") }
                simulation = threads.counts.started
                await connection.close()
            }
            // The engine saw the call end and stopped midway (uncancelled it would run on for
            // tens of seconds; the suite's limit would fail it).
            if simulationStarted {
                try await poll(timeout: .seconds(60)) { threads.counts.finished == simulation }
                #expect(threads.counts.stoppedEarly == 1, "the engine observed the cancellation: \(threads.counts)")
            }
            let before = threads.counts.started
            // The compute thread is free: the next call, on a connection, completes.
            let next = ending == .disconnect ? try await RawConnection.handshake(port: port).0 : connection
            try await next.sendRequest(3, Self.runBacktest(Self.light))
            let frame = try #require(await next.nextFrame(where: { $0.type == .response && $0.streamID == 3 }))
            #expect(try CallResponse.decode(frame.payload).status.code == .ok)
            // Only the next call ran since: a heavy call stopped in its shared phase never simulates.
            #expect(threads.counts.started == before + 1 && threads.counts.finished == threads.counts.started)
            await next.close()
        }
        try await threads.shutdown()
    }

    /// Issue 11: CancelBatch stops a SUMMARY sweep inside its running chunk, not after it.
    @Test func cancelBatchStopsASweepWithinItsChunk() async throws {
        let threads = ComputeThreads(numberOfThreads: 1)
        let service = try Self.service(threads)
        let variants = (0..<10).map { Self.heavy(positions: 1_000, name: "variant \($0)") }
        let (ids, announce) = AsyncStream<String>.makeStream()
        let batch = Task {
            try await service.runBatch(
                BatchRequest(variants: variants, settings: Self.settings, detail: .summary), context: CallContext(streamID: 1)
            ) { update in
                if update.completed == 0 && !update.batchID.isEmpty { announce.yield(update.batchID) }
            }
        }
        var iterator = ids.makeAsyncIterator()
        let id = try #require(await iterator.next())
        try await poll(timeout: .seconds(120)) { threads.counts.started == 1 }
        let cancelled = try await service.cancelBatch(id: id, context: CallContext(streamID: 3))
        #expect(cancelled.state == .cancelled)
        try await poll(timeout: .seconds(60)) { threads.counts.finished == 1 }
        #expect(threads.counts.stoppedEarly == 1, "the sweep observed the cancel inside its chunk: \(threads.counts)")
        _ = await batch.result
        let status = try await service.batchStatus(id: id, knownIndices: [], context: CallContext(streamID: 5))
        #expect(status.state == .cancelled)
        #expect(status.completed < variants.count, "the chunk of 10 stopped early: \(status.completed) finished")
        try await threads.shutdown()
    }

    /// A CANCEL from a client that reads nothing stops a SUMMARY sweep: the stream's writer
    /// waits for room (the client's socket and the server's output bound are full), and the
    /// CANCEL must fail it and stop the simulation; GetBatchStatus on a second connection then
    /// reads CANCELLED with fewer variants than the grid (before, the batch ran to its end and
    /// stayed PARTIAL).
    @Test func aCancelFromAClientThatReadsNothingStopsASweep() async throws {
        let threads = ComputeThreads(numberOfThreads: 1)
        let service = try Self.service(threads)
        try await withServer({ $0.maxOutboundBuffer = 64 * 1024 }, service: service) { _, port in
            let connection = try await RawConnection(port: port, readNothing: true, receiveBuffer: 4096)
            var preface = ByteBuffer()
            Wire.writePreface(into: &preface)
            try await connection.send(preface)
            // 200 x 100 = 20,000 variants: several seconds in a debug build on one thread (small
            // enough not to weigh on the memory bounds of suites running alongside).
            let grid = Grid(base: Self.light, axes: [
                GridAxis(path: "positions[0].entry.lhs", range: "sma:5..204"),
                GridAxis(path: "positions[0].entry.rhs", range: "sma:210..309"),
            ])
            let total = grid.count
            try await connection.sendRequest(1, CallRequest(method: .runBatch(
                BatchRequest(grid: grid, settings: Self.settings, maxParallel: 1, detail: .summary))))
            try await poll(timeout: .seconds(120)) { await !service.jobs.ids.isEmpty }
            let id = try #require(await service.jobs.ids.first)
            let job = try await service.jobs.job(id: id)
            // Far more results than the socket and the 64 KiB bound hold: the writer waits.
            try await poll(timeout: .seconds(120)) { job.summaries.count >= 3_000 }
            try await connection.send(Frame(type: .cancel, streamID: 1, payload: CancelMessage().encoded()))
            let reader = BacktestClient(host: "127.0.0.1", port: port)
            var status = try await reader.batchStatus(id: id, timeout: .seconds(10))
            let deadline = ContinuousClock.now + .seconds(60)
            while status.state == .partial, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
                status = try await reader.batchStatus(id: id, timeout: .seconds(10))
            }
            await reader.close()
            #expect(status.state == .cancelled, "\(status.state) \(status.completed)/\(status.total)")
            #expect(status.completed < total, "\(status.completed) of \(total)")
            await connection.close()
        }
        try await threads.shutdown()
    }
}

/// An engine whose simulation of a strategy named "heavy" never ends on its own: it checks its
/// flag every millisecond, as the real engine does between fill points, until the flag stops it
/// (or 10 minutes pass). Other strategies run on the real engine. For a deadline that must fall
/// inside the simulation.
struct EndlessEngine: BacktestRunner {
    var name: String { "endless" }

    func run(
        validated strategy: Strategy, market: PreparedMarket, indicators: IndicatorStore, cancellation: CancellationFlag?,
        bound: AnswerBound
    ) throws(BacktestError) -> BacktestResult {
        for _ in 0..<(strategy.name == "heavy" ? 600_000 : 0) {
            try cancellation.check()
            usleep(1_000)
        }
        return try VectorEngine().run(validated: strategy, market: market, indicators: indicators, cancellation: cancellation, bound: bound)
    }
}

/// CPU work that grows with the request runs on the compute threads, not on the call's task
/// (Swift's cooperative pool, shared by every connection): a tester measured light calls of
/// other connections waiting 100+ ms behind indicators of 2,500 distinct periods computed there.
@Suite("Large work is off the cooperative pool", .serialized, .timeLimit(.minutes(2)))
struct OffCooperativePoolWorkTests {
    static func pipeline(_ threads: ComputeThreads) throws -> BacktestPipeline {
        var logger = Logger(label: "test.offload")
        logger.logLevel = .critical
        return BacktestPipeline(
            source: try LocalFilesProvider(directory: SharedData.dailyDirectory), cache: nil, logger: logger, computeThreads: threads)
    }

    static func strategy(periods: ClosedRange<Int>) -> Strategy {
        Strategy(name: "periods", positions: periods.map { period in
            Position(ticker: "AAPL", weight: 1 / Double(periods.count),
                     entry: .compare(lhs: EngineCancellationTests.indicator("sma:\(period)"), op: .greater, rhs: .number(0)))
        })
    }

    @Test func manyIndicatorSeriesAreComputedOnTheComputeThreads() async throws {
        let threads = ComputeThreads(numberOfThreads: 1)
        let pipeline = try Self.pipeline(threads)
        // 40 series over the whole history (from the data epoch, about 5,000 days each): over
        // `offloadIndicatorValues`. Work on the threads: the indicators, then the simulation.
        _ = try await pipeline.runBacktest(Self.strategy(periods: 2...41), settings: EngineCancellationTests.settings)
        #expect(threads.counts.started == 2, "\(threads.counts)")
        // One series: computed on the call's task; only the simulation goes to the threads.
        _ = try await pipeline.runBacktest(Self.strategy(periods: 7...7), settings: EngineCancellationTests.settings)
        #expect(threads.counts.started == 3, "\(threads.counts)")
        try await threads.shutdown()
    }
}
