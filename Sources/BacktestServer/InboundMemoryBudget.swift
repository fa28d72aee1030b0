import NIOConcurrencyHelpers

/// The server-wide bound on the bytes of incoming frames held in memory: frames being received
/// and REQUEST payloads not yet decoded (issue 12: 100 connections each sending a 4 MiB frame
/// slowly took the server from 313 to 730 MB; 100 complete 3.6 MB requests queued on one
/// connection held 1.1 GB).
///
/// How it holds: once a frame's 10-byte header says its payload is larger than
/// `smallFrameBytes`, its connection reserves the frame's size before it reads more of it
/// (`Account.reserve`). While the reservation does not fit, the connection stops reading from its
/// socket (TCP backpressure: the rest waits in the kernel and then in the client) and resumes when
/// it does; its frame timer and its keepalive check are suspended meanwhile, since the server,
/// not the client, is the one not reading. A REQUEST's reservation moves to its call and is given
/// back once the payload is decoded (or the call ends without decoding it); other frames give it
/// back as soon as they are handled.
///
/// What fits: the whole reservation within `bytes` (or nothing else reserved: one frame larger
/// than the budget is received alone), and the connection's own reservations within
/// `perConnection` (or the connection holding nothing), so one client queueing large requests
/// cannot take the whole budget. Waiters are served in arrival order; one that waits only for its
/// own connection's reservations to end does not hold up the others.
///
/// Frames that arrive whole within one read (the server reads at most 4 x 64 KiB from a socket at
/// a time) are already in memory and are counted without waiting (`Account.count`); a connection
/// that then holds more than it may, or holds anything while the server is over its budget, stops
/// reading until it fits again. So the budget can be exceeded by at most one read per connection.
/// Small frames (ordinary calls, PINGs, CANCELs) are not counted and never wait: a connection
/// holds at most `maxConcurrentStreams` of them.
final class InboundMemoryBudget: Sendable {
    /// Frames with payloads up to this size (16 KiB; an ordinary call is a few hundred bytes to a
    /// few KiB) are not counted.
    static let smallFrameBytes = 16 * 1024

    /// The budget, in bytes (at least one).
    let bytes: Int
    /// The most one connection may hold while others want room, in bytes.
    let perConnection: Int
    private let state = NIOLockedValueBox(State())

    private struct Waiter {
        let account: Account
        let id: UInt64
        let amount: Int
        let granted: @Sendable (Hold) -> Void
    }

    private struct State {
        var inUse = 0
        var held: [ObjectIdentifier: Int] = [:]
        var waiters: [Waiter] = []
        var lastID: UInt64 = 0
    }

    /// - Parameters:
    ///   - bytes: the server-wide budget.
    ///   - largestFrame: the largest frame a connection may send (header and payload), so one
    ///     connection may always hold at least one frame.
    init(bytes: Int, largestFrame: Int) {
        self.bytes = max(1, bytes)
        perConnection = max(largestFrame, self.bytes / 8)
    }

    /// Bytes reserved now and connections waiting (tests, diagnostics).
    var usage: (reserved: Int, waiting: Int) { state.withLockedValue { ($0.inUse, $0.waiters.count) } }

    /// One connection's part of the budget.
    func account() -> Account { Account(self) }

    /// What `Account.reserve` did.
    enum Reservation {
        /// Reserved: hold it for as long as the bytes are held.
        case granted(Hold)
        /// Does not fit now: `granted` will be called, on some thread, once it does, unless the
        /// wait is cancelled first (`Account.cancelWait`).
        case waiting(id: UInt64)
    }

    /// A connection's reservations.
    final class Account: Sendable {
        let budget: InboundMemoryBudget

        fileprivate init(_ budget: InboundMemoryBudget) { self.budget = budget }

        /// Bytes this connection holds now.
        var held: Int { budget.state.withLockedValue { $0.held[ObjectIdentifier(self)] ?? 0 } }

        /// Reserves `amount` bytes if they fit (see the type's documentation) and nobody waits
        /// ahead; otherwise queues the wait. `amount` 0 asks only to be within the limits again
        /// (granted at once when they are; its hold holds nothing).
        func reserve(_ amount: Int, granted: @escaping @Sendable (Hold) -> Void) -> Reservation {
            let key = ObjectIdentifier(self)
            let outcome = budget.state.withLockedValue { state -> Reservation? in
                // Waiters held back only by their own connection's share do not hold this one up.
                if state.waiters.allSatisfy({ budget.waitsForItsOwnShare($0, state) }), budget.fits(amount, key, state) {
                    state.inUse += amount
                    state.held[key, default: 0] += amount
                    return nil
                }
                state.lastID += 1
                state.waiters.append(Waiter(account: self, id: state.lastID, amount: amount, granted: granted))
                return .waiting(id: state.lastID)
            }
            return outcome ?? .granted(Hold(self, amount))
        }

        /// Counts `amount` bytes already in memory (a frame that arrived whole), without waiting.
        func count(_ amount: Int) -> Hold {
            budget.state.withLockedValue { state in
                state.inUse += amount
                state.held[ObjectIdentifier(self), default: 0] += amount
            }
            return Hold(self, amount)
        }

        /// Whether this connection should stop reading until `reserve(0)` is granted: it holds
        /// more than `perConnection`, or holds anything while the server is over its budget.
        var mustWait: Bool {
            budget.state.withLockedValue { state in
                (state.held[ObjectIdentifier(self)] ?? 0) > 0 && !budget.fits(0, ObjectIdentifier(self), state)
            }
        }

        /// Withdraws a queued wait; false when it was granted already (its `granted` is called,
        /// or was: that hold must be released).
        @discardableResult
        func cancelWait(_ id: UInt64) -> Bool {
            let removed = budget.state.withLockedValue { state -> Bool in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return false }
                state.waiters.remove(at: index)
                return true
            }
            // It may have held up the waiters behind it.
            if removed { budget.grantWaiting() }
            return removed
        }

        fileprivate func release(_ amount: Int) {
            guard amount > 0 else { return }
            budget.state.withLockedValue { state in
                state.inUse -= amount
                let key = ObjectIdentifier(self)
                let left = (state.held[key] ?? 0) - amount
                state.held[key] = left > 0 ? left : nil
            }
            budget.grantWaiting()
        }
    }

    /// Bytes reserved; given back by `release()` (once), or when the hold is freed.
    final class Hold: Sendable {
        let amount: Int
        private let account: Account
        private let released = NIOLockedValueBox(false)

        fileprivate init(_ account: Account, _ amount: Int) {
            self.account = account
            self.amount = amount
        }

        func release() {
            let first = released.withLockedValue { released -> Bool in
                defer { released = true }
                return !released
            }
            if first { account.release(amount) }
        }

        deinit { release() }
    }

    /// Whether what holds `waiter` back is its own connection's reservations.
    private func waitsForItsOwnShare(_ waiter: Waiter, _ state: State) -> Bool {
        let own = state.held[ObjectIdentifier(waiter.account)] ?? 0
        return own > 0 && own + waiter.amount > perConnection
    }

    /// A connection that is the only holder may go past the budget up to its own share (one frame
    /// larger than the budget is received alone): counting only `inUse == 0` let such a frame's
    /// own reservation stop its connection's reading for good (`mustWait`), and the budget stayed
    /// taken after the client left (a tester's 1.1 MB frame with a 1 MiB budget, and 40 MB with
    /// 32 MiB: every later large request waited forever).
    private func fits(_ amount: Int, _ account: ObjectIdentifier, _ state: State) -> Bool {
        let own = state.held[account] ?? 0
        return (state.inUse == own || state.inUse + amount <= bytes) && (own == 0 || own + amount <= perConnection)
    }

    /// Grants waiters in arrival order while they fit. A waiter held back only by its own
    /// connection's reservations is passed over; one held back by the budget stops the round, so
    /// a large frame is not overtaken forever by smaller ones.
    private func grantWaiting() {
        var granted: [(Waiter, Hold)] = []
        state.withLockedValue { state in
            var index = 0
            while index < state.waiters.count {
                let waiter = state.waiters[index]
                let key = ObjectIdentifier(waiter.account)
                if waitsForItsOwnShare(waiter, state) {
                    index += 1
                    continue
                }
                guard fits(waiter.amount, key, state) else { break }
                state.waiters.remove(at: index)
                state.inUse += waiter.amount
                state.held[key, default: 0] += waiter.amount
                granted.append((waiter, Hold(waiter.account, waiter.amount)))
            }
        }
        for (waiter, hold) in granted { waiter.granted(hold) }
    }
}
