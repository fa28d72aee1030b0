import Synchronization

/// A request to stop long CPU-bound work early, shared between whoever may cancel it (a call's
/// task, via `ComputeThreads`) and the synchronous work itself (the engine), which checks it at
/// points a few milliseconds apart: per position while building signals, per fill point of the
/// portfolio loop, per variant of a sweep, per indicator series.
///
/// The same points are where the work gives its thread to waiting work when the scheduler asks
/// (time slicing, see `ComputeThreads`): `check()` then calls the yield handler the scheduler
/// installed, which returns when the work's turn comes again.
///
/// Cost: `check()` is one relaxed atomic load while nothing is asked, so checking it in a loop
/// whose iterations do real work (a position, a fill day) is free in practice (`engine-bench`
/// measures no change).
///
/// Swift's task cancellation does not reach synchronous code running on a thread of its own
/// (there is no current task there); this flag carries it. Once set it stays set.
package final class CancellationFlag: Sendable {
    /// Bit 0: cancelled (stays set). Bit 1: a yield is asked (cleared when handled).
    private let state = Atomic<UInt8>(0)
    private let observed = Atomic<Bool>(false)
    private let yieldHandler = Mutex<(@Sendable () -> Void)?>(nil)

    private static let cancelledBit: UInt8 = 1
    private static let yieldBit: UInt8 = 2

    package init() {}

    /// Whether `cancel()` was called.
    @inline(__always)
    package var isCancelled: Bool { state.load(ordering: .relaxed) & Self.cancelledBit != 0 }

    /// Asks the work to stop. Safe from any thread, any number of times.
    package func cancel() {
        state.bitwiseOr(Self.cancelledBit, ordering: .relaxed)
    }

    /// Whether some `check()` found the flag set and threw: the work saw the request and stopped
    /// early (rather than ending before it looked again).
    package var wasObserved: Bool { observed.load(ordering: .relaxed) }

    /// Throws CANCELLED ("computation cancelled") when the flag is set; the work stops there.
    /// When a yield is asked (`requestYield()`), first runs the yield handler, which may block
    /// this thread until the work's next turn.
    @inline(__always)
    package func check() throws(BacktestError) {
        if state.load(ordering: .relaxed) != 0 { try slowCheck() }
    }

    @inline(never)
    private func slowCheck() throws(BacktestError) {
        if state.load(ordering: .relaxed) & Self.yieldBit != 0 {
            state.bitwiseAnd(~Self.yieldBit, ordering: .relaxed)
            if let handler = yieldHandler.withLock({ $0 }) { handler() }
        }
        if isCancelled {
            observed.store(true, ordering: .relaxed)
            throw BacktestError(.cancelled, "computation cancelled")
        }
    }

    /// Asks the work to run the yield handler at its next `check()` (no effect without a handler).
    package func requestYield() {
        state.bitwiseOr(Self.yieldBit, ordering: .relaxed)
    }

    /// Installs (or, with nil, removes) what `check()` runs when a yield is asked. The scheduler
    /// that runs the work installs it before the work starts and removes it when the work ends.
    package func setYieldHandler(_ handler: (@Sendable () -> Void)?) {
        yieldHandler.withLock { $0 = handler }
    }
}

extension Optional where Wrapped == CancellationFlag {
    /// `check()` on the flag, if there is one (no flag: the work cannot be cancelled).
    @inline(__always)
    package func check() throws(BacktestError) {
        if let flag = self { try flag.check() }
    }
}
