import BacktestCore
import BacktestModel
@testable import BacktestService
import NIOCore
import Testing

/// The batch memory budget's admission queue (issue 11 item 5): a batch that does not fit next to
/// the running ones waits for room (first come, first served) up to its deadline; one larger than
/// the budget, or one more than the queue holds, is refused with RESOURCE_EXHAUSTED naming the
/// budget; a cancelled waiter leaves the queue.
@Suite struct BatchAdmissionTests {
    static let source = BatchSource(settings: BatchFixture.tenYears, variants: [], grid: nil, detail: .summary)

    /// Polls (bounded, 10 s) until `condition` holds.
    func eventually(_ condition: () async -> Bool) async throws -> Bool {
        for _ in 0..<1000 {
            if await condition() { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return await condition()
    }

    @Test func aBatchThatDoesNotFitWaitsUntilARunningOneFinishes() async throws {
        let registry = BatchJobRegistry(maxRetainedBytes: 0, budgetBytes: 1000)
        let first = try await registry.admit(total: 1, source: Self.source, estimatedBytes: 600)
        let second = Task { try await registry.admit(total: 1, source: Self.source, estimatedBytes: 600) }
        #expect(try await eventually { await registry.queuedCount == 1 })
        #expect(await registry.reservedBytes == 600)
        _ = await first.finish(.final)
        let admitted = try await second.value
        #expect(admitted.id != first.id)
        #expect(await registry.queuedCount == 0)
        #expect(await registry.reservedBytes == 600)
    }

    @Test func waitersAreAdmittedInArrivalOrder() async throws {
        let registry = BatchJobRegistry(maxRetainedBytes: 0, budgetBytes: 1000)
        let running = try await registry.admit(total: 1, source: Self.source, estimatedBytes: 1000)
        let large = Task { try await registry.admit(total: 2, source: Self.source, estimatedBytes: 900) }
        #expect(try await eventually { await registry.queuedCount == 1 })
        let small = Task { try await registry.admit(total: 3, source: Self.source, estimatedBytes: 100) }
        #expect(try await eventually { await registry.queuedCount == 2 })
        _ = await running.finish(.final)
        #expect(try await large.value.total == 2)
        #expect(try await small.value.total == 3)
    }

    @Test func aBatchLargerThanTheBudgetOrOneMoreThanTheQueueIsRefusedNamingTheBudget() async throws {
        let registry = BatchJobRegistry(budgetBytes: 1000, maxQueued: 1)
        let tooLarge = await #expect(throws: BacktestError.self) {
            try await registry.admit(total: 5, source: Self.source, estimatedBytes: 1001)
        }
        #expect(tooLarge?.code == .resourceExhausted)
        #expect(tooLarge?.field == "run_batch")
        #expect(tooLarge?.message.contains("batch memory budget") == true)

        let running = try await registry.admit(total: 1, source: Self.source, estimatedBytes: 800)
        let waiting = Task { try await registry.admit(total: 1, source: Self.source, estimatedBytes: 800) }
        #expect(try await eventually { await registry.queuedCount == 1 })
        let full = await #expect(throws: BacktestError.self) {
            try await registry.admit(total: 1, source: Self.source, estimatedBytes: 800)
        }
        #expect(full?.code == .resourceExhausted)
        #expect(full?.message.contains("batch memory budget") == true)
        #expect(full?.message.contains("wait") == true)
        _ = await running.finish(.final)
        _ = try await waiting.value
    }

    /// Waiting batches are decoded already: what their requests hold together is bounded by a
    /// quarter of the budget (one waits whatever it holds). A fresh tester's 14 connections each
    /// sending a 4 MB grid over a 95,000-position base took the server to 680 MB, 9 waiting.
    @Test func waitingBatchesRequestsAreBoundedByAQuarterOfTheBudget() async throws {
        let registry = BatchJobRegistry(maxRetainedBytes: 0, budgetBytes: 16_000)
        #expect(registry.maxQueuedBytes == 4_000)
        // Two variants of four positions: 3,200 bytes held while the batch waits.
        let heavy = BatchSource(settings: BatchFixture.tenYears, variants: BatchFixture.smaVariants(2), grid: nil, detail: .summary)
        #expect(heavy.heldBytes == 3_200)
        let running = try await registry.admit(total: 1, source: Self.source, estimatedBytes: 16_000)
        let first = Task { try await registry.admit(total: 2, source: heavy, estimatedBytes: 8_000) }
        #expect(try await eventually { await registry.queuedCount == 1 })
        let refused = await #expect(throws: BacktestError.self) {
            try await registry.admit(total: 2, source: heavy, estimatedBytes: 8_000)
        }
        #expect(refused?.code == .resourceExhausted)
        #expect(refused?.field == "run_batch")
        #expect(refused?.message.contains("the 1 batches waiting for room hold 0 MB of requests") == true)
        #expect(refused?.message.contains("retry later") == true)
        #expect(await registry.queuedCount == 1)
        // A batch holding little still waits beside it.
        let light = Task { try await registry.admit(total: 3, source: Self.source, estimatedBytes: 8_000) }
        #expect(try await eventually { await registry.queuedCount == 2 })
        _ = await running.finish(.final)
        #expect(try await first.value.total == 2)
        #expect(try await light.value.total == 3)
        #expect(await registry.queuedCount == 0)
    }

    @Test func aWaiterPastItsDeadlineIsRefusedAndACancelledOneLeavesTheQueue() async throws {
        let registry = BatchJobRegistry(budgetBytes: 1000)
        let running = try await registry.admit(total: 1, source: Self.source, estimatedBytes: 1000)
        let late = await #expect(throws: BacktestError.self) {
            try await registry.admit(total: 1, source: Self.source, estimatedBytes: 10, deadline: .now() + .milliseconds(50))
        }
        #expect(late?.code == .resourceExhausted)
        #expect(late?.message.contains("deadline") == true)
        #expect(await registry.queuedCount == 0)

        let cancelled = Task { try await registry.admit(total: 1, source: Self.source, estimatedBytes: 10) }
        #expect(try await eventually { await registry.queuedCount == 1 })
        cancelled.cancel()
        let error = await #expect(throws: BacktestError.self) { try await cancelled.value }
        #expect(error?.code == .cancelled)
        #expect(await registry.queuedCount == 0)
        #expect(await registry.reservedBytes == 1000)
        _ = await running.finish(.final)
        #expect(try await eventually { await registry.reservedBytes == 0 })
    }

    /// Round robin across connections, first come first served within one: a fifth tester's
    /// three queued grids on one connection kept another user's small batch waiting 59 s. A
    /// batch of a connection served longer ago goes first, at once when it fits; a connection's
    /// own batches keep their order; a batch that is next and does not fit is not overtaken.
    @Test func waitersAreAdmittedRoundRobinAcrossConnections() async throws {
        final class Owner: Sendable {}
        let owners = (Owner(), Owner())  // alive for the whole test: identifiers of freed objects may coincide
        let (a, b) = (ObjectIdentifier(owners.0), ObjectIdentifier(owners.1))
        let registry = BatchJobRegistry(maxRetainedBytes: 0, budgetBytes: 1000)
        let a1 = try await registry.admit(total: 1, source: Self.source, estimatedBytes: 900, owner: a)
        let a2 = Task { try await registry.admit(total: 2, source: Self.source, estimatedBytes: 900, owner: a) }
        #expect(try await eventually { await registry.queuedCount == 1 })
        let a3 = Task { try await registry.admit(total: 3, source: Self.source, estimatedBytes: 900, owner: a) }
        #expect(try await eventually { await registry.queuedCount == 2 })
        // Another connection's small batch fits beside A's running one: admitted at once.
        let b1 = try await registry.admit(total: 11, source: Self.source, estimatedBytes: 50, owner: b)
        #expect(await registry.queuedCount == 2)
        let b2 = Task { try await registry.admit(total: 12, source: Self.source, estimatedBytes: 900, owner: b) }
        #expect(try await eventually { await registry.queuedCount == 3 })
        // A was served before B: A's oldest goes next once there is room.
        _ = await a1.finish(.final)
        _ = await b1.finish(.final)
        let second = try await a2.value
        #expect(second.total == 2)
        #expect(await registry.queuedCount == 2)
        // Now B was served longer ago than A: B's batch goes before A's third.
        _ = await second.finish(.final)
        #expect(try await b2.value.total == 12)
        #expect(await registry.queuedCount == 1)
        a3.cancel()
        _ = try? await a3.value
        withExtendedLifetime(owners) {}
    }

    /// Going ahead of the queue's next batch (EASY backfilling): a fifth tester's three
    /// 1,000,000-variant grids on three connections, one running and two waiting for room, kept
    /// another user's batch of 8 waiting 59 s though it fitted beside the running one. A later
    /// batch that fits starts at once while the next one could not start anyway; once only
    /// batches that went ahead stand in its way, nothing more goes ahead of it.
    @Test func aLaterBatchGoesAheadOnlyWhileTheNextCouldNotStartAnyway() async throws {
        final class Owner: Sendable {}
        let owners = (0..<5).map { _ in Owner() }  // alive for the whole test
        let ids = owners.map(ObjectIdentifier.init)
        let registry = BatchJobRegistry(maxRetainedBytes: 0, budgetBytes: 1000)
        // The tester's case: one grid runs, two wait, a small batch fits beside the running one.
        let grid = try await registry.admit(total: 1, source: Self.source, estimatedBytes: 800, owner: ids[0])
        let waiting = [1, 2].map { i in Task { try await registry.admit(total: 10 + i, source: Self.source, estimatedBytes: 900, owner: ids[i]) } }
        #expect(try await eventually { await registry.queuedCount == 2 })
        let small = try await registry.admit(total: 8, source: Self.source, estimatedBytes: 150, owner: ids[3])
        #expect(await registry.reservedBytes == 950)
        // One that does not fit waits.
        let later = Task { try await registry.admit(total: 9, source: Self.source, estimatedBytes: 150, owner: ids[4]) }
        #expect(try await eventually { await registry.queuedCount == 3 })
        // The grid finishes: the next grid (900) does not fit beside the small batch that went
        // ahead (150), and only that one stands in its way now: the small one that waited stays
        // queued though it would fit.
        _ = await grid.finish(.final)
        try await Task.sleep(for: .milliseconds(50))
        #expect(await registry.queuedCount == 3)
        #expect(await registry.reservedBytes == 150)
        // The small batch finishes: the next grid starts; the small one waits for room again.
        _ = await small.finish(.final)
        let second = try await waiting[0].value
        #expect(second.total == 11)
        #expect(try await eventually { await registry.queuedCount == 2 })
        _ = await second.finish(.final)
        let third = try await waiting[1].value
        _ = await third.finish(.final)
        #expect(try await later.value.total == 9)
    }

    /// A waiting batch goes ahead when room frees up beside the batches that block the next.
    @Test func aWaitingBatchGoesAheadWhenRoomFreesBesideTheBlockers() async throws {
        final class Owner: Sendable {}
        let owners = (0..<4).map { _ in Owner() }
        let ids = owners.map(ObjectIdentifier.init)
        let registry = BatchJobRegistry(maxRetainedBytes: 0, budgetBytes: 1000)
        let blocker = try await registry.admit(total: 1, source: Self.source, estimatedBytes: 600, owner: ids[0])
        let other = try await registry.admit(total: 2, source: Self.source, estimatedBytes: 300, owner: ids[1])
        let next = Task { try await registry.admit(total: 3, source: Self.source, estimatedBytes: 600, owner: ids[2]) }
        #expect(try await eventually { await registry.queuedCount == 1 })
        let small = Task { try await registry.admit(total: 4, source: Self.source, estimatedBytes: 300, owner: ids[3]) }
        #expect(try await eventually { await registry.queuedCount == 2 })
        _ = await other.finish(.final)
        #expect(try await small.value.total == 4)
        #expect(await registry.queuedCount == 1)
        _ = await blocker.finish(.final)
        let third = try await next.value
        #expect(third.total == 3)
    }

    /// A connection that has had no batch admitted takes its turn from when it arrives, not
    /// ahead of every connection served before: a hostile tester opening a new connection per
    /// batch kept another client's grid waiting until its deadline (24 of its batches ran first).
    @Test func aNewConnectionPerBatchDoesNotJumpTheQueue() async throws {
        final class Owner: Sendable {}
        let owners = (0..<6).map { _ in Owner() }  // alive for the whole test
        let ids = owners.map(ObjectIdentifier.init)
        let registry = BatchJobRegistry(maxRetainedBytes: 0, budgetBytes: 1000)
        // The victim's connection was served once.
        _ = await (try await registry.admit(total: 1, source: Self.source, estimatedBytes: 10, owner: ids[0])).finish(.final)
        let running = try await registry.admit(total: 2, source: Self.source, estimatedBytes: 900, owner: ids[1])
        let victim = Task { try await registry.admit(total: 99, source: Self.source, estimatedBytes: 900, owner: ids[0]) }
        #expect(try await eventually { await registry.queuedCount == 1 })
        // The attacker's next batch, on a new connection, arriving after the victim's.
        let attacker = Task { try await registry.admit(total: 3, source: Self.source, estimatedBytes: 900, owner: ids[2]) }
        #expect(try await eventually { await registry.queuedCount == 2 })
        _ = await running.finish(.final)
        // The victim goes first, then the attacker's.
        let next = try await victim.value
        #expect(next.total == 99)
        _ = await next.finish(.final)
        _ = await (try await attacker.value).finish(.final)
    }

    /// A batch gives back its request's large-request memory before it may wait for admission:
    /// a hostile tester's two 4 MB FULL batches deadlocked, the running one waiting in that
    /// budget for its FULL results' memory, held by the queued one, which waited for the running
    /// one's room in the batch budget.
    @Test func aBatchWaitingForAdmissionHoldsNoRequestMemory() async throws {
        let registry = BatchJobRegistry(maxRetainedBytes: 0, budgetBytes: 1 << 20)
        let blocker = try await registry.admit(total: 1, source: Self.source, estimatedBytes: 1 << 20)
        let service = try SweepBatchTests.service(jobs: registry)
        let budget = RequestMemoryBudget(bytes: 64 << 20)
        let reservation = try await RequestMemoryBudget.Reservation(budget, amount: 100 << 20)
        #expect(budget.usage.reserved == 100 << 20)
        let request = BatchRequest(variants: [SweepBatchTests.base], settings: BatchFixture.tenYears, detail: .summary)
        let batch = Task {
            try await RequestMemoryBudget.$current.withValue(reservation) {
                try await service.runBatch(request, context: CallContext(streamID: 1)) { _ in }
            }
        }
        #expect(try await eventually { await registry.queuedCount == 1 })
        #expect(budget.usage.reserved == 0)
        _ = await blocker.finish(.final)
        try await batch.value
        reservation.release()
        #expect(budget.usage == (0, 0))
    }
}
