import NIOConcurrencyHelpers

/// A decoded cached value held in process memory.
enum LocalValue: Sendable {
    case month(MonthOfBars)
    case series([Double])

    var byteSize: Int {
        switch self {
        case .month(let chunk): chunk.byteSize
        case .series(let values): 64 + values.count * 8
        }
    }
}

/// The in-process layer in front of Redis: least-recently-used, bounded by bytes, keyed by the
/// full Redis key (which includes the generation, so a purge makes old entries unreachable; they
/// are also dropped at once by `removeAll`).
///
/// Why it exists: a warm 20-year, 3-ticker query is ~750 month keys; decoding them from Redis
/// costs a round trip plus a checksum and copy per key, while this layer hands back decoded
/// columns (see docs/cache.md for the numbers).
final class LocalCache: Sendable {
    // Only touched under the lock, hence `@unchecked Sendable`.
    private final class Node: @unchecked Sendable {
        let key: String
        var value: LocalValue
        var older: Node?
        weak var newer: Node?
        init(key: String, value: LocalValue) {
            self.key = key
            self.value = value
        }
    }

    private struct State {
        var nodes: [String: Node] = [:]
        var newest: Node?
        var oldest: Node?
        var bytes = 0
    }

    let capacityBytes: Int
    private let state = NIOLockedValueBox(State())

    init(capacityBytes: Int) {
        self.capacityBytes = max(0, capacityBytes)
    }

    var isEnabled: Bool { capacityBytes > 0 }
    var byteCount: Int { state.withLockedValue { $0.bytes } }
    var count: Int { state.withLockedValue { $0.nodes.count } }

    func get(_ key: String) -> LocalValue? {
        guard isEnabled else { return nil }
        return state.withLockedValue { state in
            guard let node = state.nodes[key] else { return nil }
            Self.unlink(node, &state)
            Self.pushNewest(node, &state)
            return node.value
        }
    }

    /// Looks many keys up under one lock acquisition.
    func get(_ keys: [String]) -> [String: LocalValue] {
        guard isEnabled else { return [:] }
        return state.withLockedValue { state in
            var found: [String: LocalValue] = [:]
            for key in keys {
                guard let node = state.nodes[key] else { continue }
                Self.unlink(node, &state)
                Self.pushNewest(node, &state)
                found[key] = node.value
            }
            return found
        }
    }

    func set(_ key: String, _ value: LocalValue) {
        let size = value.byteSize
        guard isEnabled, size <= capacityBytes else { return }
        state.withLockedValue { state in
            if let existing = state.nodes.removeValue(forKey: key) {
                Self.unlink(existing, &state)
                state.bytes -= existing.value.byteSize
            }
            let node = Node(key: key, value: value)
            state.nodes[key] = node
            Self.pushNewest(node, &state)
            state.bytes += size
            while state.bytes > capacityBytes, let oldest = state.oldest {
                Self.unlink(oldest, &state)
                state.nodes.removeValue(forKey: oldest.key)
                state.bytes -= oldest.value.byteSize
            }
        }
    }

    func removeAll() {
        state.withLockedValue { state in
            // Break the strong `older` chain iteratively so a long list does not recurse in deinit.
            var node = state.newest
            while let current = node {
                node = current.older
                current.older = nil
            }
            state = State()
        }
    }

    private static func unlink(_ node: Node, _ state: inout State) {
        if let newer = node.newer { newer.older = node.older } else if state.newest === node { state.newest = node.older }
        if let older = node.older { older.newer = node.newer } else if state.oldest === node { state.oldest = node.newer }
        node.older = nil
        node.newer = nil
    }

    private static func pushNewest(_ node: Node, _ state: inout State) {
        node.older = state.newest
        state.newest?.newer = node
        state.newest = node
        if state.oldest == nil { state.oldest = node }
    }
}
