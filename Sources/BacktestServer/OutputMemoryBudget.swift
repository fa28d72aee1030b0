import NIOConcurrencyHelpers

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
/// we're under the limit". A client that reads its answers as they come holds little for long,
/// so the ones evicted are those that let answers pile up: not reading, or reading more slowly
/// than they ask.
///
/// Holdings are reported by each connection after its events (`Account.update`); an evicted
/// connection's bytes stop counting at once (it is being closed, and its queues go with it).
final class OutputMemoryBudget: Sendable {
    /// The budget, in bytes (at least one).
    let bytes: Int
    private let state = NIOLockedValueBox(State())

    private struct Holder {
        var held = 0
        let evict: @Sendable (Eviction) -> Void
    }

    private struct State {
        var total = 0
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

    /// Bytes held now by connections not evicted, and connections evicted so far (tests, diagnostics).
    var usage: (held: Int, evictions: Int) { state.withLockedValue { ($0.total, $0.evictions) } }

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

        /// Records that the connection holds `held` bytes of output now; while the server is over
        /// its budget, evicts the largest holders (possibly this one). Does nothing once this
        /// account was evicted or closed.
        func update(held: Int) {
            let key = ObjectIdentifier(self)
            let evicted = budget.state.withLockedValue { state -> [(Holder, Eviction)] in
                guard let before = state.holders[key]?.held else { return [] }
                state.holders[key]!.held = held
                state.total += held - before
                return budget.evictWhileOver(&state)
            }
            for (holder, eviction) in evicted { holder.evict(eviction) }
        }

        /// The connection is gone: what it held stops counting.
        func close() {
            budget.state.withLockedValue { state in
                guard let holder = state.holders.removeValue(forKey: ObjectIdentifier(self)) else { return }
                state.total -= holder.held
            }
        }

        deinit { close() }
    }

    /// Removes the largest holders while the total is over the budget, and returns them to be told.
    private func evictWhileOver(_ state: inout State) -> [(Holder, Eviction)] {
        var evicted: [(Holder, Eviction)] = []
        while state.total > bytes, let (key, holder) = state.holders.max(by: { $0.value.held < $1.value.held }), holder.held > 0 {
            evicted.append((holder, Eviction(heldBytes: holder.held, totalBytes: state.total, budgetBytes: bytes)))
            state.holders[key] = nil
            state.total -= holder.held
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
