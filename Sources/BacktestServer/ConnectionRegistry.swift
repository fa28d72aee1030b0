import NIOConcurrencyHelpers
import NIOCore
import Atomics

/// The server's open connections, so shutdown can reach every one and wait for the last.
final class ConnectionRegistry: Sendable {
    struct Entry {
        let channel: any Channel
        /// Run on the channel's event loop.
        let drain: () -> Void
        let close: () -> Void
    }

    private struct State {
        var entries: [UInt64: NIOLoopBound<EntryBox>] = [:]
        var draining = false
        var emptyWaiters: [CheckedContinuation<Void, Never>] = []
    }

    /// Closures that may only run on the connection's loop.
    final class EntryBox {
        let entry: Entry
        init(_ entry: Entry) { self.entry = entry }
    }

    private let state = NIOLockedValueBox(State())
    private static let ids = ManagedAtomic<UInt64>(0)

    static func nextID() -> UInt64 { ids.loadThenWrappingIncrement(ordering: .relaxed) + 1 }

    var count: Int { state.withLockedValue { $0.entries.count } }
    var isDraining: Bool { state.withLockedValue { $0.draining } }

    enum Admission { case admitted, tooMany, draining }

    /// Registers a new connection unless the server is full or shutting down; the check and the
    /// insertion are one atomic step, so concurrent accepts cannot overshoot the limit.
    /// Called on the channel's event loop.
    func admit(_ id: UInt64, limit: Int, _ entry: Entry) -> Admission {
        let box = NIOLoopBound(EntryBox(entry), eventLoop: entry.channel.eventLoop)
        return state.withLockedValue { state in
            if state.draining { return .draining }
            guard state.entries.count < limit else { return .tooMany }
            state.entries[id] = box
            return .admitted
        }
    }

    func remove(_ id: UInt64) {
        let waiters = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.entries[id] = nil
            guard state.entries.isEmpty else { return [] }
            defer { state.emptyWaiters.removeAll() }
            return state.emptyWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func drainAll() {
        let entries = state.withLockedValue { state in
            state.draining = true
            return Array(state.entries.values)
        }
        for box in entries { box.eventLoop.execute { box.value.entry.drain() } }
    }

    /// Closes every connection; one accepted while this runs is refused, not left open.
    func closeAll() {
        let entries = state.withLockedValue { state in
            state.draining = true
            return Array(state.entries.values)
        }
        for box in entries { box.eventLoop.execute { box.value.entry.close() } }
    }

    func waitUntilEmpty() async {
        await withCheckedContinuation { continuation in
            let done = state.withLockedValue { state -> Bool in
                if state.entries.isEmpty { return true }
                state.emptyWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }
}
