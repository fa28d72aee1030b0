import BacktestCore
import BacktestModel
import BacktestProtocol
import BacktestRawClient
@testable import BacktestServer
import BacktestService
import NIOConcurrencyHelpers
import Testing

/// Issue 12: large requests take turns within the server's memory budget, so several heavy calls
/// sent together cannot exhaust it. No timing is asserted: the checks are who holds the budget.
@Suite("Request memory budget", .timeLimit(.minutes(1)))
struct RequestMemoryBudgetTests {
    @Test func smallRequestsReserveNothing() {
        #expect(RequestMemoryBudget.estimate(payloadBytes: 1_000) == 0)
        #expect(RequestMemoryBudget.estimate(payloadBytes: RequestMemoryBudget.threshold) == 0)
        #expect(RequestMemoryBudget.estimate(payloadBytes: 2_000_000) == 2_000_000 * RequestMemoryBudget.estimateFactor)
    }

    @Test func callsWaitInArrivalOrderWhileTheBudgetIsTaken() async throws {
        let budget = RequestMemoryBudget(bytes: 100)
        try await budget.reserve(60)
        let order = NIOLockedValueBox<[String]>([])
        let second = Task { try await budget.reserve(50); order.withLockedValue { $0.append("second") } }
        try await poll { budget.usage.waiting == 1 }
        // A small one behind it waits too (arrival order), though it would fit now.
        let third = Task { try await budget.reserve(10); order.withLockedValue { $0.append("third") } }
        try await poll { budget.usage.waiting == 2 }
        #expect(order.withLockedValue { $0 }.isEmpty)
        budget.release(60)
        try await second.value
        try await third.value
        #expect(order.withLockedValue { $0 } == ["second", "third"])
        #expect(budget.usage.reserved == 60)
        budget.release(50)
        budget.release(10)
        #expect(budget.usage == (0, 0))
    }

    /// A call larger than the whole budget starts when nothing else holds any; the others share
    /// the budget beside it (a new user's 10,000-variant grid waited 14-44 s for another user's
    /// 1,000,000-variant grid of 2,000 indicator series to end while such a call ran alone). A
    /// second such call waits for everything to drain, and calls behind it wait their turn, so
    /// it does not starve.
    @Test func aCallLargerThanTheWholeBudgetStartsAloneAndOthersShareTheBudgetBesideIt() async throws {
        let budget = RequestMemoryBudget(bytes: 100)
        try await budget.reserve(60)
        // It waits for the 60 to be given back, and a small call behind it waits its turn.
        let large = Task { try await budget.reserve(500) }
        try await poll { budget.usage.waiting == 1 }
        let behind = Task { try await budget.reserve(10) }
        try await poll { budget.usage.waiting == 2 }
        budget.release(60)
        try await large.value
        try await behind.value
        #expect(budget.usage == (510, 0))
        // Beside it, calls share the whole budget.
        try await budget.reserve(90)
        #expect(budget.usage == (600, 0))
        let over = Task { try await budget.reserve(20) }
        try await poll { budget.usage.waiting == 1 }
        // A second large call waits until nothing is held; the calls behind it wait too.
        let second = Task { try await budget.reserve(300) }
        try await poll { budget.usage.waiting == 2 }
        budget.release(90)
        try await over.value
        #expect(budget.usage == (530, 1))
        budget.release(500)
        budget.release(10)
        budget.release(20)
        try await second.value
        #expect(budget.usage == (300, 0))
        budget.release(300)
        #expect(budget.usage == (0, 0))
    }

    @Test func aCallCancelledWhileItWaitsReservesNothingAndLetsTheNextIn() async throws {
        let budget = RequestMemoryBudget(bytes: 100)
        try await budget.reserve(90)
        let cancelled = Task { try await budget.reserve(50) }
        try await poll { budget.usage.waiting == 1 }
        let small = Task { try await budget.reserve(10) }
        try await poll { budget.usage.waiting == 2 }
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        // The head of the line left: the small one fits beside the 90 and goes in.
        try await small.value
        #expect(budget.usage == (100, 0))
        budget.release(90)
        budget.release(10)
    }

    @Test func aCancelledTaskDoesNotWait() async throws {
        let budget = RequestMemoryBudget(bytes: 100)
        try await budget.reserve(100)
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await budget.reserve(10)
        }
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(budget.usage == (100, 0))
        budget.release(100)
    }

    /// A RunBacktest whose payload is over the threshold (8,000 positions, about 320 KB), named
    /// for `TestService`'s behaviour.
    static func large(_ name: String, timeoutMs: UInt32 = 0) -> CallRequest {
        let positions = (0..<8_000).map { _ in
            Position(ticker: "AAPL", weight: 0.000125, entry: .compare(lhs: .series(SeriesRef(source: .field(.close))), op: .greater, rhs: .number(1)))
        }
        let settings = BacktestSettings(start: TradingDate(iso: "2019-01-02")!, end: TradingDate(iso: "2019-12-31")!)
        return CallRequest(header: RequestHeader(timeoutMs: timeoutMs),
                           method: .runBacktest(BacktestRequest(strategy: Strategy(name: name, positions: positions), settings: settings)))
    }

    /// The tester's case: a large call waiting for the budget behind another is answered
    /// DEADLINE_EXCEEDED at its own deadline, not after the one ahead of it ends, and is never
    /// decoded (the service never sees it).
    @Test func aLargeCallWaitingForTheBudgetEndsAtItsDeadlineUndecoded() async throws {
        #expect(Self.large("x").encoded().readableBytes > RequestMemoryBudget.threshold)
        let (service, events, gate) = TestService.make()
        try await withServer({ $0.requestMemoryBudget = 1 }, service: service) { _, port in
            let (connection, _) = try await RawConnection.handshake(port: port)
            try await connection.sendRequest(1, Self.large("gate"))
            var started: [String] = []
            for await event in events {
                if case .started(let name) = event { started.append(name); break }
            }
            try await connection.sendRequest(3, Self.large("echo", timeoutMs: 200))
            let answer = try #require(await connection.nextFrame(where: { $0.type == .response && $0.streamID == 3 }))
            let status = try CallResponse.decode(answer.payload).status
            #expect(status.code == .deadlineExceeded, "\(status)")
            await gate.open()
            let first = try #require(await connection.nextFrame(where: { $0.type == .response && $0.streamID == 1 }))
            #expect(try CallResponse.decode(first.payload).status.code == .ok)
            for await event in events {
                if case .started(let name) = event { started.append(name) }
                if case .finished("gate") = event { break }
            }
            #expect(started == ["gate"], "the call that timed out while waiting was never decoded")
            await connection.close()
        }
    }

    // MARK: Growing from the analysis

    @Test func estimatesBelowBothThresholdsDoNotCount() {
        let (analysis, answer) = (RequestMemoryBudget.analysisThreshold, RequestMemoryBudget.answerThreshold)
        #expect(!RequestMemoryBudget.counts(analysisBytes: analysis - 1, answerBytes: answer - 1))
        #expect(RequestMemoryBudget.counts(analysisBytes: analysis, answerBytes: 0))
        #expect(RequestMemoryBudget.counts(analysisBytes: 0, answerBytes: answer))
    }

    /// The answer's part of the estimate: one order per position per day, 40 bytes each, up to
    /// the frame limit, three times over. The tester's 20 daily-rebalanced positions over 25
    /// years count (their answers were 3.5 MB, 7.7 MB held each while built); the load test's
    /// largest single backtest (10 positions, 3 years) does not.
    @Test func theAnswerEstimateIsBoundedByTheFrameAndCountsForLargeDailyBacktests() {
        let frame = 4 << 20
        #expect(BacktestPipeline.answerEstimate(positions: 20, days: 6_300, frameLimit: frame) == 3 * frame)
        #expect(BacktestPipeline.answerEstimate(positions: 5, days: 6_300, frameLimit: frame) == 5 * 6_300 * 40 * 3)
        #expect(RequestMemoryBudget.counts(analysisBytes: 0, answerBytes: BacktestPipeline.answerEstimate(positions: 5, days: 6_300, frameLimit: frame)))
        #expect(!RequestMemoryBudget.counts(analysisBytes: 0, answerBytes: BacktestPipeline.answerEstimate(positions: 10, days: 757, frameLimit: frame)))
        #expect(BacktestPipeline.answerEstimate(positions: .max, days: .max, frameLimit: nil) == Int.max / 3 * 3)
    }

    /// Two calls holding part of the budget both grow: the one that gives its part back first
    /// is served after the other ends, never a deadlock.
    @Test func twoGrowingCallsDoNotDeadlock() async throws {
        let unit = RequestMemoryBudget.analysisThreshold
        let budget = RequestMemoryBudget(bytes: 10 * unit)
        let a = try await RequestMemoryBudget.Reservation(budget, amount: 4 * unit)
        let b = try await RequestMemoryBudget.Reservation(budget, amount: 4 * unit)
        let growA = Task { try await a.grow(to: 8 * unit) }
        try await poll { budget.usage.waiting == 1 }
        let growB = Task { try await b.grow(to: 8 * unit) }
        try await growA.value
        #expect(a.amount == 8 * unit)
        try await poll { budget.usage.waiting == 1 }
        a.release()
        try await growB.value
        #expect(b.amount == 8 * unit)
        b.release()
        #expect(budget.usage == (0, 0))
    }

    /// A backtest whose analysis needs more than the budget has left waits before its
    /// indicators are computed, and runs once the budget is free.
    @Test func aCallWhoseAnalysisNeedsMoreWaitsBeforeItsIndicators() async throws {
        let threads = ComputeThreads(numberOfThreads: 1)
        let pipeline = try OffCooperativePoolWorkTests.pipeline(threads)
        let strategy = OffCooperativePoolWorkTests.strategy(periods: 2...101)
        let days = 30 * 252
        #expect(BacktestPipeline.memoryEstimate(series: 100, positions: 100, days: days) > RequestMemoryBudget.analysisThreshold)
        let budget = RequestMemoryBudget(bytes: 256 << 20)
        let other = try await RequestMemoryBudget.Reservation(budget, amount: 250 << 20)
        let reservation = try await RequestMemoryBudget.Reservation(budget, amount: 0)
        let call = Task {
            try await RequestMemoryBudget.$current.withValue(reservation) {
                try await pipeline.runBacktest(strategy, settings: EngineCancellationTests.settings)
            }
        }
        try await poll { budget.usage.waiting == 1 }
        #expect(threads.counts.started == 0, "nothing computed while it waits")
        other.release()
        let result = try await call.value
        #expect(result.equity.count > 0)
        #expect(reservation.amount >= RequestMemoryBudget.analysisThreshold)
        reservation.release()
        try await threads.shutdown()
    }

    /// The tester's 232 KB requests with thousands of distinct indicator series each held
    /// hundreds of MB alone (753 MB with 5,600): a call whose analysis needs more than four
    /// times the budget is refused at once, naming what it needs and what is allowed, before
    /// any indicator is computed; one within it runs.
    @Test func aCallNeedingMoreThanFourBudgetsIsRefusedBeforeItsIndicators() async throws {
        let threads = ComputeThreads(numberOfThreads: 1)
        let pipeline = try OffCooperativePoolWorkTests.pipeline(threads)
        let strategy = OffCooperativePoolWorkTests.strategy(periods: 2...101)
        // With room for it, the call runs, and its reservation says what it needs.
        let roomy = RequestMemoryBudget(bytes: 1 << 30)
        let held = try await RequestMemoryBudget.Reservation(roomy, amount: 0)
        let result = try await RequestMemoryBudget.$current.withValue(held) {
            try await pipeline.runBacktest(strategy, settings: EngineCancellationTests.settings)
        }
        #expect(result.equity.count > 0)
        // What it held less its answer's part: its series and positions.
        let settings = EngineCancellationTests.settings
        let needed = held.amount - BacktestPipeline.answerEstimate(
            positions: strategy.positions.count, days: BacktestPipeline.tradingDays(settings.start, settings.end),
            frameLimit: pipeline.answerBound.frameLimit)
        held.release()
        // A budget four times which is half of that: below what its series alone take (nearly
        // all of it: 100 series of 24 bytes a day against a few hundred bytes a position).
        let budget = RequestMemoryBudget(bytes: needed / 2 / RequestMemoryBudget.maxPerCallFactor)
        let startedBefore = threads.counts.started
        let reservation = try await RequestMemoryBudget.Reservation(budget, amount: 0)
        let error = await #expect(throws: BacktestError.self) {
            try await RequestMemoryBudget.$current.withValue(reservation) {
                try await pipeline.runBacktest(strategy, settings: EngineCancellationTests.settings)
            }
        }
        #expect(error?.code == .resourceExhausted)
        #expect(error?.field == "run_backtest.strategy")
        #expect(error?.message.contains("for its 100 distinct indicator series") == true, "\(String(describing: error?.message))")
        #expect(error?.message.contains("a call may hold at most \(budget.maxPerCall >> 20) MB of them (4 x --request-memory-mb)") == true)
        #expect(threads.counts.started == startedBefore, "refused before its indicators were computed")
        #expect(budget.usage == (0, 0))
        try await threads.shutdown()
    }
}
