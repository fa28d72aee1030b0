/// FNV-1a, 64-bit (Fowler, Noll, Vo; offset basis 0xcbf29ce484222325, prime 0x100000001b3): the
/// package's one non-cryptographic hash where the value must be stable across processes and
/// machines (Swift's `Hasher` is seeded per process). Used for the cache's value checksums,
/// the demo generator's per-ticker streams and the benchmark's result fingerprints. Cheap, and
/// enough to catch truncation, bit flips and foreign values; not for security.
package struct FNV1a64: Sendable, Hashable {
    /// The hash of everything added so far.
    package private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    package init() {}

    /// Adds `bytes` in order.
    package mutating func add<C: Collection<UInt8>>(_ bytes: C) {
        var hash = value
        let done: Void? = bytes.withContiguousStorageIfAvailable { buffer in
            for byte in buffer { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        }
        if done == nil {
            for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        }
        value = hash
    }

    /// Adds the 8 bytes of `word`, least significant first (its little-endian layout).
    package mutating func add(_ word: UInt64) {
        var word = word
        for _ in 0..<8 {
            value = (value ^ (word & 0xff)) &* 0x0000_0100_0000_01b3
            word >>= 8
        }
    }

    /// The hash of `bytes`.
    package static func hash<C: Collection<UInt8>>(_ bytes: C) -> UInt64 {
        var hasher = FNV1a64()
        hasher.add(bytes)
        return hasher.value
    }
}
