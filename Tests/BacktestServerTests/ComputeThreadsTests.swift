import BacktestService
import Dispatch
import NIOConcurrencyHelpers
import Testing

/// `ComputeThreads`, where the pipeline runs simulations: work runs on its threads and returns
/// its value, and work whose task is cancelled before it started never starts (a cancelled batch
/// starts no further variant).
@Suite("Compute threads", .timeLimit(.minutes(1)))
struct ComputeThreadsTests {
    @Test func runReturnsTheValueOfTheWork() async throws {
        let threads = ComputeThreads(numberOfThreads: 1)
        #expect(try await threads.run { (1...10).reduce(0, +) } == 55)
        try await threads.shutdown()
    }

    @Test func workWhoseTaskIsCancelledBeforeItStartedNeverRuns() async throws {
        let threads = ComputeThreads(numberOfThreads: 1)
        // The only thread is busy until `gate` opens, so the second piece of work waits in line.
        let gate = DispatchSemaphore(value: 0)
        let (started, didStart) = AsyncStream<Void>.makeStream()
        let busy = Task { try await threads.run { didStart.yield(); gate.wait() } }
        for await _ in started { break }
        let ran = NIOLockedValueBox(false)
        let queued = Task { try await threads.run { ran.withLockedValue { $0 = true } } }
        queued.cancel()
        await #expect(throws: CancellationError.self) { try await queued.value }
        gate.signal()
        try await busy.value
        try await threads.shutdown()
        #expect(!ran.withLockedValue { $0 })
    }

    @Test func cancelledTaskStartsNoWork() async throws {
        let threads = ComputeThreads(numberOfThreads: 1)
        let ran = NIOLockedValueBox(false)
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await threads.run { ran.withLockedValue { $0 = true } }
        }
        await #expect(throws: CancellationError.self) { try await task.value }
        try await threads.shutdown()
        #expect(!ran.withLockedValue { $0 })
    }
}
