import Synchronization

/// A request to stop long CPU-bound work early, shared between whoever may cancel it (a call's
/// task, via `ComputeThreads`) and the synchronous work itself (the engine), which checks it at
/// points a few milliseconds apart: per position while building signals, per fill point of the
/// portfolio loop, per variant of a sweep, per indicator series.
///
/// Cost: `isCancelled` is one relaxed atomic load, so checking it in a loop whose iterations do
/// real work (a position, a fill day) is free in practice (`engine-bench` measures no change).
///
/// Swift's task cancellation does not reach synchronous code running on a thread of its own
/// (there is no current task there); this flag carries it. Once set it stays set.
package final class CancellationFlag: Sendable {
    private let cancelled = Atomic<Bool>(false)
    private let observed = Atomic<Bool>(false)

    package init() {}

    /// Whether `cancel()` was called.
    @inline(__always)
    package var isCancelled: Bool { cancelled.load(ordering: .relaxed) }

    /// Asks the work to stop. Safe from any thread, any number of times.
    package func cancel() {
        cancelled.store(true, ordering: .relaxed)
    }

    /// Whether some `check()` found the flag set and threw: the work saw the request and stopped
    /// early (rather than ending before it looked again).
    package var wasObserved: Bool { observed.load(ordering: .relaxed) }

    /// Throws CANCELLED ("computation cancelled") when the flag is set; the work stops there.
    @inline(__always)
    package func check() throws(BacktestError) {
        if isCancelled { try stop() }
    }

    @inline(never)
    private func stop() throws(BacktestError) {
        observed.store(true, ordering: .relaxed)
        throw BacktestError(.cancelled, "computation cancelled")
    }
}

extension Optional where Wrapped == CancellationFlag {
    /// `check()` on the flag, if there is one (no flag: the work cannot be cancelled).
    @inline(__always)
    package func check() throws(BacktestError) {
        if let flag = self { try flag.check() }
    }
}
