import BacktestCore
import BacktestService
import Dispatch
import Foundation
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

    /// Issue 12: work already running is told through its flag when its task is cancelled, and
    /// stops; the thread is then free for the next piece of work.
    @Test func runningWorkSeesItsTaskCancelled() async throws {
        let threads = ComputeThreads(numberOfThreads: 1)
        let (started, didStart) = AsyncStream<Void>.makeStream()
        let spins = NIOLockedValueBox(0)
        let running = Task {
            try await threads.run(cancellable: { flag in
                didStart.yield()
                // Without the flag this would spin for about a minute (the suite's time limit).
                for _ in 0..<60_000 {
                    if flag.isCancelled { break }
                    spins.withLockedValue { $0 += 1 }
                    usleep(1_000)
                }
                return (try? flag.check()) == nil
            })
        }
        for await _ in started { break }
        running.cancel()
        #expect(try await running.value, "the work saw its flag and stopped early")
        #expect(threads.counts.stoppedEarly == 1)
        #expect(spins.withLockedValue { $0 } < 60_000)
        #expect(try await threads.run { 42 } == 42, "the thread is free again")
        #expect(threads.counts == ComputeThreads.Counts(started: 2, finished: 2, stoppedEarly: 1, queued: 0))
        try await threads.shutdown()
    }

    /// Issue 12: fair admission. With the only thread held, connection A queues five pieces of
    /// work, then B and C one each: a freed thread serves the tenants in turn (A, B, C, A, ...),
    /// so B and C wait for one of A's, not for all five. Deterministic: the order is decided by
    /// the queues, not by timing.
    @Test func queuedWorkIsServedRoundRobinAcrossTenants() async throws {
        let threads = ComputeThreads(numberOfThreads: 1)
        let gate = DispatchSemaphore(value: 0)
        let (started, didStart) = AsyncStream<Void>.makeStream()
        let busy = Task { try await threads.run { didStart.yield(); gate.wait() } }
        for await _ in started { break }
        let order = NIOLockedValueBox<[String]>([])
        let a = ConnectionState(), b = ConnectionState(), c = ConnectionState()
        var tasks: [Task<Void, any Error>] = []
        func submit(_ label: String, _ tenant: ConnectionState, queuedBefore: Int) async throws {
            tasks.append(Task {
                try await ComputeThreads.$tenant.withValue(ComputeTenant(tenant)) {
                    try await threads.run { order.withLockedValue { $0.append(label) } }
                }
            })
            // Each piece is in its queue before the next is submitted, so the arrival order is fixed.
            try await poll { threads.counts.queued > queuedBefore }
        }
        for i in 1...5 { try await submit("A\(i)", a, queuedBefore: i - 1) }
        try await submit("B1", b, queuedBefore: 5)
        try await submit("C1", c, queuedBefore: 6)
        try await submit("B2", b, queuedBefore: 7)
        gate.signal()
        try await busy.value
        for task in tasks { try await task.value }
        #expect(order.withLockedValue { $0 } == ["A1", "B1", "C1", "A2", "B2", "A3", "A4", "A5"])
        try await threads.shutdown()
        withExtendedLifetime((a, b, c)) {}
    }

    /// A queued piece cancelled in the middle of the queues leaves the others' turns unchanged.
    @Test func cancellingQueuedWorkKeepsTheOthersInTurn() async throws {
        let threads = ComputeThreads(numberOfThreads: 1)
        let gate = DispatchSemaphore(value: 0)
        let (started, didStart) = AsyncStream<Void>.makeStream()
        let busy = Task { try await threads.run { didStart.yield(); gate.wait() } }
        for await _ in started { break }
        let order = NIOLockedValueBox<[String]>([])
        let a = ConnectionState(), b = ConnectionState()
        var tasks: [String: Task<Void, any Error>] = [:]
        for (label, tenant) in [("A1", a), ("A2", a), ("B1", b), ("B2", b)] {
            let queued = threads.counts.queued
            tasks[label] = Task {
                try await ComputeThreads.$tenant.withValue(ComputeTenant(tenant)) {
                    try await threads.run { order.withLockedValue { $0.append(label) } }
                }
            }
            try await poll { threads.counts.queued > queued }
        }
        tasks["B1"]!.cancel()
        await #expect(throws: CancellationError.self) { try await tasks["B1"]!.value }
        #expect(threads.counts.queued == 3)
        gate.signal()
        try await busy.value
        for (label, task) in tasks where label != "B1" { try await task.value }
        #expect(order.withLockedValue { $0 } == ["A1", "B2", "A2"])
        try await threads.shutdown()
        withExtendedLifetime((a, b)) {}
    }

    // MARK: Time slicing (issue 12)

    /// Work that runs "for ever" (until told to stop) with check points 1 ms apart.
    private static func longWork(until stop: NIOLockedValueBox<Bool>, progress: NIOLockedValueBox<Int>? = nil)
        -> @Sendable (CancellationFlag) -> Bool {
        { flag in
            while !stop.withLockedValue({ $0 }) {
                do { try flag.check() } catch { return false }
                progress?.withLockedValue { $0 += 1 }
                usleep(1_000)
            }
            return true
        }
    }

    /// With the only turn held by long work, another connection's short work still runs: the
    /// long work yields at a check point once its slice is used and resumes afterwards.
    @Test func longWorkYieldsItsTurnToWaitingWork() async throws {
        let threads = ComputeThreads(numberOfThreads: 1, slice: .milliseconds(5))
        let stop = NIOLockedValueBox(false)
        let (started, didStart) = AsyncStream<Void>.makeStream()
        let a = ConnectionState(), b = ConnectionState()
        let long = Task {
            try await ComputeThreads.$tenant.withValue(ComputeTenant(a)) {
                try await threads.run(cancellable: { flag in didStart.yield(); return Self.longWork(until: stop)(flag) })
            }
        }
        for await _ in started { break }
        // Without slicing this would wait for the long work, which only stops below.
        let short = try await ComputeThreads.$tenant.withValue(ComputeTenant(b)) { try await threads.run { 7 } }
        #expect(short == 7)
        #expect(threads.counts.yields >= 1)
        stop.withLockedValue { $0 = true }
        #expect(try await long.value, "the long work resumed and ended normally")
        #expect(threads.counts.parked == 0)
        try await threads.shutdown()
        withExtendedLifetime((a, b)) {}
    }

    /// Two long pieces of work of two connections on one turn both make progress (round robin of
    /// slices), not one after the other.
    @Test func longWorkOfTwoConnectionsShareOneTurn() async throws {
        let threads = ComputeThreads(numberOfThreads: 1, slice: .milliseconds(5))
        let stop = NIOLockedValueBox(false)
        let first = NIOLockedValueBox(0), second = NIOLockedValueBox(0)
        let a = ConnectionState(), b = ConnectionState()
        let tasks = [(a, first), (b, second)].map { tenant, progress in
            Task {
                try await ComputeThreads.$tenant.withValue(ComputeTenant(tenant)) {
                    try await threads.run(cancellable: Self.longWork(until: stop, progress: progress))
                }
            }
        }
        try await poll { first.withLockedValue { $0 } > 20 && second.withLockedValue { $0 } > 20 }
        stop.withLockedValue { $0 = true }
        for task in tasks { #expect(try await task.value) }
        #expect(threads.counts.yields >= 2)
        try await threads.shutdown()
        withExtendedLifetime((a, b)) {}
    }

    /// Parked work whose task is cancelled is woken at once and stops, while the work holding
    /// the turn goes on. Deterministic: the work that takes the turn has no check points (it
    /// blocks on a gate), so the long work stays parked until it is cancelled.
    @Test func parkedWorkStopsWhenItsTaskIsCancelled() async throws {
        let threads = ComputeThreads(numberOfThreads: 1, slice: .milliseconds(5))
        let stop = NIOLockedValueBox(false)
        let gate = DispatchSemaphore(value: 0)
        let a = ConnectionState(), b = ConnectionState()
        let (started, didStart) = AsyncStream<Void>.makeStream()
        let long = Task {
            try await ComputeThreads.$tenant.withValue(ComputeTenant(a)) {
                try await threads.run(cancellable: { flag in didStart.yield(); return Self.longWork(until: stop)(flag) })
            }
        }
        for await _ in started { break }
        let blocking = Task { try await ComputeThreads.$tenant.withValue(ComputeTenant(b)) { try await threads.run { gate.wait() } } }
        try await poll { threads.counts.parked == 1 }
        long.cancel()
        #expect(try await long.value == false, "the parked work was woken and saw its flag")
        #expect(threads.counts.stoppedEarly == 1)
        #expect(threads.counts.parked == 0)
        gate.signal()
        try await blocking.value
        try await threads.shutdown()
        withExtendedLifetime((a, b)) {}
    }

    /// Work not started yet goes before parked work, even of the same tenant: a short call never
    /// waits behind a long call's next slice. Deterministic: the work holding the turn blocks on a
    /// gate (it has no check points), so the long work stays parked until the gate opens.
    @Test func newWorkGoesBeforeParkedWork() async throws {
        let order = try await Self.orderAfterParking(waitingOfTheParkedTenant: true, continuing: false)
        #expect(order == ["waiting", "parked"])
    }

    /// A `continuing` piece (a sweep's next chunk) waits with parked work, in turn across
    /// tenants, not before it: a tester's eight connections looping 50,000-variant grids starved
    /// the grids whose chunk was parked (one grid in 32 s against 18 grids for others), the
    /// others' next chunks always going first as new work. Deterministic as above.
    @Test func aContinuingPieceWaitsWithParkedWork() async throws {
        let order = try await Self.orderAfterParking(waitingOfTheParkedTenant: false, continuing: true)
        #expect(order == ["parked", "waiting"])
    }

    /// One thread: tenant A's long work starts, tenant B's work takes the turn and blocks on a
    /// gate, so A's work parks; then one more piece waits (A's, or B's; `continuing` or new), and
    /// the gate opens. The order in which A's parked work ("parked") and that piece ("waiting")
    /// finish.
    static func orderAfterParking(waitingOfTheParkedTenant: Bool, continuing: Bool) async throws -> [String] {
        let threads = ComputeThreads(numberOfThreads: 1, slice: .milliseconds(5))
        let stop = NIOLockedValueBox(false)
        let gate = DispatchSemaphore(value: 0)
        let order = NIOLockedValueBox<[String]>([])
        let a = ConnectionState(), b = ConnectionState()
        let (started, didStart) = AsyncStream<Void>.makeStream()
        let long = Task {
            try await ComputeThreads.$tenant.withValue(ComputeTenant(a)) {
                try await threads.run(cancellable: { flag in
                    didStart.yield()
                    let ended = Self.longWork(until: stop)(flag)
                    order.withLockedValue { $0.append("parked") }
                    return ended
                })
            }
        }
        for await _ in started { break }
        let blocking = Task { try await ComputeThreads.$tenant.withValue(ComputeTenant(b)) { try await threads.run { gate.wait() } } }
        try await poll { threads.counts.parked == 1 }
        let waiting = Task {
            try await ComputeThreads.$tenant.withValue(ComputeTenant(waitingOfTheParkedTenant ? a : b)) {
                try await threads.run(continuing: continuing, cancellable: { _ in order.withLockedValue { $0.append("waiting") } })
            }
        }
        try await poll { threads.counts.queued == 1 }
        stop.withLockedValue { $0 = true }
        gate.signal()
        try await blocking.value
        try await waiting.value
        #expect(try await long.value)
        try await threads.shutdown()
        withExtendedLifetime((a, b)) {}
        return order.withLockedValue { $0 }
    }

    /// With no parking place (`maxParked: 0`), running work is never parked: waiting work waits
    /// for it to end.
    @Test func withoutParkingPlacesWorkIsNotSliced() async throws {
        let threads = ComputeThreads(numberOfThreads: 1, maxParked: 0, slice: .milliseconds(1))
        let stop = NIOLockedValueBox(false)
        let (started, didStart) = AsyncStream<Void>.makeStream()
        let long = Task { try await threads.run(cancellable: { flag in didStart.yield(); return Self.longWork(until: stop)(flag) }) }
        for await _ in started { break }
        let ran = NIOLockedValueBox(false)
        let short = Task { try await threads.run { ran.withLockedValue { $0 = true } } }
        try await poll { threads.counts.queued == 1 }
        try await Task.sleep(for: .milliseconds(50))
        #expect(!ran.withLockedValue { $0 }, "the short work waits: the long work may not park")
        stop.withLockedValue { $0 = true }
        #expect(try await long.value)
        try await short.value
        #expect(ran.withLockedValue { $0 })
        #expect(threads.counts.yields == 0)
        try await threads.shutdown()
    }
    /// Work and what it captures are released once the work has run (no retain cycle through
    /// the job's flag and yield handler).
    @Test func finishedWorkIsReleased() async throws {
        final class Payload: Sendable {
            let released: NIOLockedValueBox<Int>
            init(_ released: NIOLockedValueBox<Int>) { self.released = released }
            deinit { released.withLockedValue { $0 += 1 } }
        }
        let threads = ComputeThreads(numberOfThreads: 1)
        let released = NIOLockedValueBox(0)
        for _ in 0..<10 {
            let payload = Payload(released)
            _ = try await threads.run { withExtendedLifetime(payload) { 1 } }
            _ = try await threads.run(cancellable: { flag in withExtendedLifetime(payload) { (try? flag.check()) == nil } })
        }
        try await poll { released.withLockedValue { $0 } == 10 }
        #expect(released.withLockedValue { $0 } == 10)
        try await threads.shutdown()
    }
}
