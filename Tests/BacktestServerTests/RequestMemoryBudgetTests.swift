@testable import BacktestServer
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

    @Test func aCallLargerThanTheWholeBudgetRunsAlone() async throws {
        let budget = RequestMemoryBudget(bytes: 100)
        try await budget.reserve(500)
        let next = Task { try await budget.reserve(1) }
        try await poll { budget.usage.waiting == 1 }
        budget.release(500)
        try await next.value
        #expect(budget.usage == (1, 0))
        budget.release(1)
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
}
