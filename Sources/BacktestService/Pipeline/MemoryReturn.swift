import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Gives the heap's free memory back to the system after a call that allocated a lot (issue 12).
///
/// glibc's malloc keeps freed memory in its arenas: after an 80 MB answer (or a large
/// computation refused with RESOURCE_EXHAUSTED) was built and released, the process's RSS stays
/// hundreds of MB above what it uses (435 MB kept after the 20,000-position 10-year case), and
/// the server's peak RSS budget (500 MB under load) counts it. `malloc_trim(0)` returns the free
/// pages of every arena.
///
/// The trigger is deliberately simple and rare: an answer whose encoding took at least
/// `largeAnswerBytes` (the server calls `soon()` after handing it on), the end of a call whose
/// request reserved at least `largeRequestReservation`, or a simulation that stopped at the
/// answer bound (`BacktestPipeline.simulate`). Small calls never trim: a trim
/// walks the heap and costs milliseconds. Trims are coalesced (one pending at a time, at most one
/// per `minimumInterval`) and run `delay` later on a Dispatch utility thread, never on a NIO
/// event loop, the cooperative pool or a compute thread, by which time the call's result and
/// encoded answer are released. On a system without glibc's `malloc_trim` it does nothing.
package enum MemoryReturn {
    /// Encoded answers at least this large (1 MiB; about 30,000 orders) trigger a trim.
    package static let largeAnswerBytes = 1 << 20
    /// Calls whose request reserved at least this much memory (`RequestMemoryBudget`: 32 MiB, a
    /// 1 MiB payload, about 20,000 positions) trigger a trim when they end.
    package static let largeRequestReservation = 32 << 20
    /// How long after the trigger the trim runs: the caller's last references (the answer being
    /// written) are gone by then.
    package static let delay: UInt64 = 100_000_000
    /// Nanoseconds from one trim to the next at least, so a stream of large answers (batch
    /// status reads) trims about once a second, not once per answer.
    package static let minimumInterval: UInt64 = 1_000_000_000

    private static let pending = Atomic<Bool>(false)
    private static let completed = Atomic<Int>(0)
    /// `DispatchTime` uptime of the last trim (0: none yet).
    private static let lastTrim = Atomic<UInt64>(0)

    /// Trims run so far (tests).
    package static var trims: Int { completed.load(ordering: .relaxed) }

    /// Schedules one `malloc_trim(0)` `delay` from now (or `minimumInterval` after the last
    /// one, if later), unless one is already pending.
    package static func soon() {
        guard pending.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        let last = lastTrim.load(ordering: .relaxed)
        let at = max(now + delay, last == 0 ? 0 : last + minimumInterval)
        DispatchQueue.global(qos: .utility).asyncAfter(deadline: DispatchTime(uptimeNanoseconds: at)) {
            lastTrim.store(DispatchTime.now().uptimeNanoseconds, ordering: .relaxed)
            pending.store(false, ordering: .releasing)
            trimNow()
            completed.add(1, ordering: .relaxed)
        }
    }

    /// `malloc_trim(0)` now, on the calling thread (blocking: milliseconds for a large heap).
    /// Looked up at run time: Swift's Glibc module does not export `<malloc.h>`.
    package static func trimNow() {
        #if canImport(Glibc)
        guard let trim = mallocTrim else { return }
        _ = trim(0)
        #endif
    }

    /// Allocations at least this large (256 KiB) are served by `mmap` and unmapped when freed.
    package static let mmapThreshold: Int32 = 256 * 1024

    /// Sets glibc's mmap threshold to `mmapThreshold` once, at server start (`backtestd`).
    ///
    /// Why: glibc raises its threshold on its own (up to 32 MiB) each time a large mmapped block
    /// is freed, after which large blocks come from the arenas, where a freed block stays resident
    /// as long as any small allocation beside it lives. A heavy call's large arrays (the request's
    /// payload, per-position signals and legs, the orders) then left the heap's high-water mark
    /// higher each time: under `loadtest --users 50 --duration 60 --hostile 5` peak RSS fell from
    /// 522 MB to 483 MB with the threshold fixed, p99 of the users unchanged (README). Small
    /// allocations, which are nearly all of a light call's, are unaffected. No-op without glibc.
    ///
    /// It also bounds glibc's malloc arenas to `arenaLimit` (one per core, at least 2), unless
    /// `MALLOC_ARENA_MAX` is set. Why: glibc gives each thread that meets contention its own
    /// arena, up to 8 per core, and memory freed in an arena stays there for that arena's next
    /// allocations only. Calls run on whichever thread is free (event loops, the cooperative
    /// pool, the compute threads), so a series of large calls left a high-water mark in each arena
    /// they touched: a tester's 30 connections x 2 RunBacktests of 100,000 positions (one call at a
    /// time, about 205 MB each) peaked at 716 MB with the default, 618 MB with 4 arenas and 513 MB
    /// with 2 (same script, release build, 2-core VM). The load test's p99 with it is in the README.
    package static func configureAllocator() {
        #if canImport(Glibc)
        guard let mallopt = mallocOption else { return }
        // M_MMAP_THRESHOLD is -3 in <malloc.h>; setting it also turns the dynamic adjustment off.
        _ = mallopt(-3, mmapThreshold)
        // M_ARENA_MAX is -8.
        if getenv("MALLOC_ARENA_MAX") == nil { _ = mallopt(-8, arenaLimit) }
        #endif
    }

    /// Most malloc arenas (`configureAllocator`): one per core, at least 2.
    package static var arenaLimit: Int32 {
        Int32(clamping: max(2, ProcessInfo.processInfo.activeProcessorCount))
    }

    #if canImport(Glibc)
    private typealias Option = @convention(c) (Int32, Int32) -> Int32
    /// glibc's `int mallopt(int param, int value)`, nil when the C library has none (musl).
    nonisolated(unsafe) private static let mallocOption: Option? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt")
        .map { unsafeBitCast($0, to: Option.self) }
    private typealias Trim = @convention(c) (Int) -> Int32
    /// glibc's `int malloc_trim(size_t pad)`, nil when the C library has none (musl).
    nonisolated(unsafe) private static let mallocTrim: Trim? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim")
        .map { unsafeBitCast($0, to: Trim.self) }
    #endif
}
