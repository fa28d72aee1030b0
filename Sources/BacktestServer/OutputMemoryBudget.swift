import NIOConcurrencyHelpers
import NIOCore

/// The server-wide bound on the bytes of output held for clients: answers (RESPONSE and DATA
/// frames) built and waiting in a connection's queues, and frames handed to a channel and not yet
/// taken by the socket (issue 12: 40 connections each sending 8 calls with 3.5 MB answers and
/// reading none held 1.17 GB until the keepalive closed them; clients reading 100 KB/s held
/// 0.9-1.0 GB for as long as they read).
///
/// Each connection is bounded on its own (`maxRunningCalls` answers queued, `maxOutboundBuffer`
/// in the channel), but the sum grows with the number of connections. When it passes `bytes`,
/// the connection holding the most is evicted (closed with GOAWAY RESOURCE_EXHAUSTED), then the
/// next largest, until the rest fit: Redis 7's client eviction (`maxmemory-clients`, redis/redis
/// pull request 8687), which likewise "disconnects clients from larger buckets downwards until
/// we're under the limit".
///
/// One refinement: connections that have held output without a break for `staleAfter` (1 s) go
/// before those whose output is fresh, largest first within each group. A client that reads its
/// answers as they come holds them for milliseconds; without it, many connections each holding a
/// little unread could get an innocent client evicted for the one large answer it is receiving
/// at full speed. The ones evicted are those that let answers pile up: not reading, or reading
/// more slowly than they ask.
///
/// Holdings are reported by each connection after its events (`Account.update`); an evicted
/// connection keeps reporting what it still holds (its queues are dropped at once; the channel's
/// bytes go once written or when it closes, within a second) and keeps counting in `usage`, but
/// not in the choice of further victims: those bytes are on their way out.
final class OutputMemoryBudget: Sendable {
    /// The budget, in bytes (at least one).
    let bytes: Int
    private let state = NIOLockedValueBox(State())

    private struct Holder {
        var held = 0
        /// Chosen to go: its bytes are leaving, it is not chosen again.
        var evicted = false
        /// Since when `held` has been above 0 without a break (nil while it is 0).
        var holdingSince: NIODeadline?
        let evict: @Sendable (Eviction) -> Void
    }

    /// Output held this long without a break is stale: its connection goes before those whose
    /// output is fresh.
    static let staleAfter = TimeAmount.seconds(1)

    private struct State {
        /// Bytes held by every connection, evicted ones included.
        var total = 0
        /// Bytes held by evicted connections (leaving).
        var leaving = 0
        var holders: [ObjectIdentifier: Holder] = [:]
        var evictions = 0
    }

    /// What an evicted connection is told: what it held, and the budget it did not fit.
    struct Eviction: Equatable, Sendable {
        /// Bytes of output the connection held when it was chosen.
        let heldBytes: Int
        /// Bytes held by every connection together at that moment, its own included.
        let totalBytes: Int
        /// The budget (`OutputMemoryBudget.bytes`).
        let budgetBytes: Int
    }

    init(bytes: Int) {
        self.bytes = max(1, bytes)
    }

    /// Bytes held now by connections not evicted (what the budget bounds), and connections
    /// evicted so far (tests, diagnostics).
    var usage: (held: Int, evictions: Int) { state.withLockedValue { ($0.total - $0.leaving, $0.evictions) } }
    /// Bytes evicted connections still hold: their channels' bytes, until written or closed.
    var leavingBytes: Int { state.withLockedValue { $0.leaving } }

    /// One connection's part of the budget. `evict` is called, once and on whatever thread
    /// reported the holding that went over the budget, if this connection is chosen to go.
    func account(evict: @escaping @Sendable (Eviction) -> Void) -> Account {
        let account = Account(self)
        state.withLockedValue { $0.holders[ObjectIdentifier(account)] = Holder(evict: evict) }
        return account
    }

    /// A connection's holding.
    final class Account: Sendable {
        let budget: OutputMemoryBudget

        fileprivate init(_ budget: OutputMemoryBudget) { self.budget = budget }

        /// Records that the connection holds `held` bytes of output at `now`; while the server is
        /// over its budget, evicts holders (possibly this one; see the type's documentation). Does
        /// nothing once this account was closed.
        func update(held: Int, now: NIODeadline = .now()) {
            let key = ObjectIdentifier(self)
            let evicted = budget.state.withLockedValue { state -> [(Holder, Eviction)] in
                guard let holder = state.holders[key] else { return [] }
                let before = holder.held
                state.holders[key]!.held = held
                if holder.evicted { state.leaving += held - before }
                if held == 0 {
                    state.holders[key]!.holdingSince = nil
                } else if before == 0 {
                    state.holders[key]!.holdingSince = now
                }
                state.total += held - before
                return budget.evictWhileOver(&state, now: now)
            }
            for (holder, eviction) in evicted { holder.evict(eviction) }
        }

        /// The connection is gone: what it held stops counting.
        func close() {
            budget.state.withLockedValue { state in
                guard let holder = state.holders.removeValue(forKey: ObjectIdentifier(self)) else { return }
                state.total -= holder.held
                if holder.evicted { state.leaving -= holder.held }
            }
        }

        deinit { close() }
    }

    /// Evicts holders while what is not already leaving is over the budget, stale ones first, the
    /// largest first within each group, and returns them to be told.
    private func evictWhileOver(_ state: inout State, now: NIODeadline) -> [(Holder, Eviction)] {
        var evicted: [(Holder, Eviction)] = []
        // Stale before fresh, then larger before smaller.
        func goesFirst(_ a: Holder, before b: Holder) -> Bool {
            let (aStale, bStale) = (a.holdingSince.map { now - $0 >= Self.staleAfter } ?? false,
                                    b.holdingSince.map { now - $0 >= Self.staleAfter } ?? false)
            return aStale != bStale ? aStale : a.held > b.held
        }
        while state.total - state.leaving > bytes,
              let (key, holder) = state.holders.filter({ !$0.value.evicted }).min(by: { goesFirst($0.value, before: $1.value) }),
              holder.held > 0 {
            evicted.append((holder, Eviction(heldBytes: holder.held, totalBytes: state.total - state.leaving, budgetBytes: bytes)))
            state.holders[key]!.evicted = true
            state.leaving += holder.held
            state.evictions += 1
        }
        return evicted
    }
}

extension OutputMemoryBudget {
    /// The budget `configuration` asks for (`outputMemoryBudget`).
    convenience init(_ configuration: ServerConfiguration) {
        self.init(bytes: configuration.outputMemoryBudget)
    }
}
