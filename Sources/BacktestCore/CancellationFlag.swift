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
        // Only the thread the scheduler runs the work on yields (the work's own thread, where
        // this flag is `current`): a helper thread of the work (e.g. a sweep's concurrentPerform
        // workers) parking would leave the scheduler's count of running work wrong.
        if state.load(ordering: .relaxed) & Self.yieldBit != 0, Self.current === self { yieldNow() }
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

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension CancellationFlag {
    /// The flag of the work running on this thread, while a scheduler (`ComputeThreads`) runs
    /// work with one; nil elsewhere. For check points in code that is not handed a flag because
    /// it sits below an API that has none (request decoding): see `yieldPoint()`.
    package static var current: CancellationFlag? {
        pthread_getspecific(currentKey).map { Unmanaged<CancellationFlag>.fromOpaque($0).takeUnretainedValue() }
    }

    /// Runs `body` with `flag` as this thread's `current` (the caller keeps `flag` alive meanwhile).
    package static func withCurrent<Value>(_ flag: CancellationFlag, _ body: () throws -> Value) rethrows -> Value {
        let previous = pthread_getspecific(currentKey)
        pthread_setspecific(currentKey, Unmanaged.passUnretained(flag).toOpaque())
        defer { pthread_setspecific(currentKey, previous) }
        return try body()
    }

    /// A check point for time slicing in code without a flag of its own: when this thread runs
    /// work whose scheduler asked it to yield, yields (may block until the work's next turn).
    /// Never throws: cancellation is left to the work's own checks (or to the call ending).
    @inline(__always)
    package static func yieldPoint() {
        guard let flag = current, flag.state.load(ordering: .relaxed) & yieldBit != 0 else { return }
        flag.yieldNow()
    }

    @inline(never)
    private func yieldNow() {
        state.bitwiseAnd(~Self.yieldBit, ordering: .relaxed)
        if let handler = yieldHandler.withLock({ $0 }) { handler() }
    }

    private static let currentKey: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "pthread_key_create failed")
        return key
    }()
}
