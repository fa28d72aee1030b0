import NIOConcurrencyHelpers

/// The server-wide bound on the memory that large requests may take at once while they are
/// decoded and run, so that several clients sending heavy calls together cannot exhaust the
/// server (issue 12: peak RSS <= 500 MB under `loadtest --hostile 5`).
///
/// A call whose REQUEST payload is larger than `threshold` reserves an estimate of what it will
/// hold, `estimateFactor` times its payload, before it is decoded, and gives it back when it ends.
/// The factor is measured: a 40,000-position RunBacktest is a 2 MB payload and peaks at 67 MB of
/// heap (decoded messages, the strategy, per-position signals, the orders up to the frame bound).
/// Calls wait in arrival order while the budget is taken. A call larger than the whole budget
/// (up to `maxPerCall`) starts when nothing else holds any, and the others share the budget beside
/// it: a new user's 10,000-variant grid (200 indicator series, 24 MB by the estimate) waited
/// 14-44 s for another user's 1,000,000-variant grid of 2,000 series (242 MB) to end when such a
/// call ran alone. So at most `maxPerCall` plus the budget is reserved at once. Waiting counts
/// against the call's deadline, and a call cancelled while it waits (CANCEL, a closed
/// connection, shutdown) ends without having been decoded.
///
/// Small requests (the vast majority, below `threshold`) never wait: their memory is bounded by
/// the per-connection stream limit and the frame limit.
package final class RequestMemoryBudget: Sendable {
    /// Payloads above this size reserve memory before they are decoded: those whose decoding
    /// moves to the compute threads (256 KiB, the server's `CallRunner.offloadBytes`).
    package static let threshold = 256 * 1024
    /// What a call's analysis says it will hold (`grow(to:)`) counts from this size on (8 MiB):
    /// an ordinary call's few indicator series are far below it and never wait.
    package static let analysisThreshold = 8 << 20
    /// What one FULL result may hold while it is built (`BacktestPipeline.answerEstimate`; a
    /// batch reserves it for each variant it simulates at once) counts from this size on (1 MiB): the load test's calls (10 positions over 3 years, about
    /// 0.9 MiB by the estimate) never wait; 40 connections x 8 calls of 20 daily-rebalanced
    /// positions over 25 years (3.5 MB answers, about 7 MB held each while built) held 2.3 GB at
    /// once before it counted (issue 12, a tester's script).
    package static let answerThreshold = 1 << 20

    /// Whether a call's estimate counts against the budget (`Reservation.grow(to:)`): its
    /// indicator series and positions from `analysisThreshold` on, or its answer from
    /// `answerThreshold` on. Below both the call never waits: the lock and a wait would cost an
    /// ordinary call more than its memory is worth.
    package static func counts(analysisBytes: Int, answerBytes: Int) -> Bool {
        analysisBytes >= analysisThreshold || answerBytes >= answerThreshold
    }
    /// Bytes of memory a large call holds per payload byte (see the type's documentation).
    package static let estimateFactor = 32

    /// The budget in bytes.
    package let bytes: Int
    /// The most one call's indicator series may take by its analysis (`maxPerCallFactor` times
    /// the budget): a call above it is refused with RESOURCE_EXHAUSTED rather than run alone (a
    /// tester's 232 KB requests with 5,600 distinct indicator series took the server to 753 MB).
    package var maxPerCall: Int { bytes.multipliedReportingOverflow(by: Self.maxPerCallFactor).partialValue }
    package static let maxPerCallFactor = 4
    private let state: NIOLockedValueBox<State>

    private struct Waiter {
        let id: UInt64
        let bytes: Int
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var inUse = 0
        var running = 0
        var lastID: UInt64 = 0
        var waiters: [Waiter] = []
        /// What the one running call larger than the budget holds (0 for none).
        var oversized = 0

        /// A call larger than the budget runs when nothing else does; the others share the
        /// budget, beside such a call too.
        func fits(_ bytes: Int, budget: Int) -> Bool {
            bytes > budget ? running == 0 : inUse - oversized + bytes <= budget
        }

        mutating func take(_ bytes: Int, budget: Int) {
            inUse += bytes
            running += 1
            if bytes > budget { oversized = bytes }
        }
    }

    /// A budget of `bytes` (at least one).
    package init(bytes: Int) {
        self.bytes = max(1, bytes)
        state = NIOLockedValueBox(State())
    }

    /// The reservation a call with a payload of `payloadBytes` makes; 0 below `threshold`.
    package static func estimate(payloadBytes: Int) -> Int {
        payloadBytes > threshold ? payloadBytes.multipliedReportingOverflow(by: estimateFactor).partialValue : 0
    }

    /// Bytes reserved now, and calls waiting, for tests and metrics.
    package var usage: (reserved: Int, waiting: Int) {
        state.withLockedValue { ($0.inUse, $0.waiters.count) }
    }

    /// Waits until `amount` bytes fit (see `State.fits`), reserves them and returns;
    /// `release(_:)` them when the call ends. Returns at once for 0. Throws `CancellationError`
    /// when the task is cancelled while it waits (nothing is reserved then).
    package func reserve(_ amount: Int) async throws {
        guard amount > 0 else { return }
        let id = state.withLockedValue { state -> UInt64 in
            state.lastID += 1
            return state.lastID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                enum Decision { case granted, waiting, cancelled }
                let decision = state.withLockedValue { state -> Decision in
                    // Checked under the lock that the cancellation handler takes: either this sees
                    // the cancel, or the handler sees the waiter.
                    if Task.isCancelled { return .cancelled }
                    if state.waiters.isEmpty && state.fits(amount, budget: bytes) {
                        state.take(amount, budget: bytes)
                        return .granted
                    }
                    state.waiters.append(Waiter(id: id, bytes: amount, continuation: continuation))
                    return .waiting
                }
                switch decision {
                case .granted: continuation.resume()
                case .cancelled: continuation.resume(throwing: CancellationError())
                case .waiting: break
                }
            }
        } onCancel: {
            let waiter = state.withLockedValue { state -> Waiter? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index)
            }
            waiter?.continuation.resume(throwing: CancellationError())
            // The head of the line may have been this waiter: let the next ones in if they fit.
            if waiter != nil { grantWaiting() }
        }
    }

    /// Gives back what `reserve(_:)` reserved (`amount` as reserved; 0 is a no-op).
    package func release(_ amount: Int) {
        guard amount > 0 else { return }
        state.withLockedValue { state in
            state.inUse -= amount
            state.running -= 1
            if amount > bytes { state.oversized = 0 }
        }
        grantWaiting()
    }

    /// Lets waiters in, in arrival order, while they fit.
    private func grantWaiting() {
        let granted = state.withLockedValue { state -> [Waiter] in
            var granted: [Waiter] = []
            while let first = state.waiters.first, state.fits(first.bytes, budget: bytes) {
                state.waiters.removeFirst()
                state.take(first.bytes, budget: bytes)
                granted.append(first)
            }
            return granted
        }
        for waiter in granted { waiter.continuation.resume() }
    }

    /// The call's reservation, while its work runs (the server sets it around the call).
    @TaskLocal package static var current: Reservation?

    /// What one call holds of the budget: what its payload reserved, then what its analysis says
    /// it needs (`grow(to:)`). `release()` gives it all back when the call ends.
    package final class Reservation: Sendable {
        private let budget: RequestMemoryBudget
        private let held: NIOLockedValueBox<Int>

        /// Reserves `amount` (waiting while the budget is taken; see `reserve(_:)`).
        package init(_ budget: RequestMemoryBudget, amount: Int) async throws {
            self.budget = budget
            try await budget.reserve(amount)
            held = NIOLockedValueBox(amount)
        }

        /// Bytes held now.
        package var amount: Int { held.withLockedValue { $0 } }

        /// The most this call may hold (`RequestMemoryBudget.maxPerCall`).
        package var maxPerCall: Int { budget.maxPerCall }

        /// Holds `total` bytes from now on, if that is more than held: gives back what it held and
        /// waits its turn for `total` (holding part while waiting for more could deadlock two
        /// growing calls). The caller decides whether an estimate counts at all
        /// (`RequestMemoryBudget.counts`). Throws `CancellationError` when the task is cancelled
        /// while it waits (nothing held then).
        package func grow(to total: Int) async throws {
            let current = amount
            guard total > current else { return }
            held.withLockedValue { $0 = 0 }
            budget.release(current)
            try await budget.reserve(total)
            held.withLockedValue { $0 = total }
        }

        /// Gives back what is held (a second call gives back nothing; a later `grow(to:)` reserves
        /// again, and the call's end gives that back).
        package func release() {
            let amount = held.withLockedValue { value -> Int in
                defer { value = 0 }
                return value
            }
            budget.release(amount)
        }
    }
}
