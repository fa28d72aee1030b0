import BacktestCore

/// The binary envelope of every cached value:
///
///     offset  size  field
///     0       4     magic "BTDC"
///     4       2     schema version (`CacheSchema.version`)
///     6       1     kind (1 = month of bars, 2 = indicator series)
///     7       1     reserved, 0
///     8       4     count (rows)
///     12      8     identity: FNV-1a-64 of the full Redis key the value was written under
///     20      8     FNV-1a-64 of every byte after the header
///     28      ...   kind-specific fields, then the payload
///
/// All integers and doubles little-endian. A value whose magic, version, kind, length, identity
/// or checksum does not match is corrupt, from another format, or stored under a key that is not
/// its own (copied, renamed, written by a bug): the reader treats it as a miss and the writer
/// overwrites it, so it is never served.
enum PackedValue {
    static let magic: [UInt8] = Array("BTDC".utf8)
    static let headerSize = 28

    enum Kind: UInt8 {
        case monthOfBars = 1
        case series = 2
    }

    /// Builds a value for `key`: header (with identity and checksum) + `body`.
    static func seal(kind: Kind, count: Int, key: String, body: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(headerSize + body.count)
        bytes += magic
        bytes.appendLittleEndian(CacheSchema.version)
        bytes.append(kind.rawValue)
        bytes.append(0)
        bytes.appendLittleEndian(UInt32(truncatingIfNeeded: count))
        bytes.appendLittleEndian(FNV1a64.hash(key.utf8))
        bytes.appendLittleEndian(FNV1a64.hash(body))
        bytes += body
        return bytes
    }

    /// Checks the envelope against `key`; returns the row count and the body, or nil when
    /// anything is off.
    static func open(_ bytes: [UInt8], kind: Kind, key: String) -> (count: Int, body: ArraySlice<UInt8>)? {
        guard bytes.count >= headerSize, Array(bytes[0..<4]) == magic,
              bytes.readLittleEndian(UInt16.self, at: 4) == CacheSchema.version,
              bytes[6] == kind.rawValue, bytes[7] == 0,
              bytes.readLittleEndian(UInt64.self, at: 12) == FNV1a64.hash(key.utf8)
        else { return nil }
        let count = Int(bytes.readLittleEndian(UInt32.self, at: 8))
        let body = bytes[headerSize...]
        guard FNV1a64.hash(body) == bytes.readLittleEndian(UInt64.self, at: 20) else { return nil }
        return (count, body)
    }

    /// True for an intact value of this format that was written under another key than `key`
    /// (for the log: "stored under another key" rather than "corrupt").
    static func isForeign(_ bytes: [UInt8], key: String) -> Bool {
        guard bytes.count >= headerSize, Array(bytes[0..<4]) == magic,
              bytes.readLittleEndian(UInt16.self, at: 4) == CacheSchema.version
        else { return false }
        return bytes.readLittleEndian(UInt64.self, at: 12) != FNV1a64.hash(key.utf8)
            && FNV1a64.hash(bytes[headerSize...]) == bytes.readLittleEndian(UInt64.self, at: 20)
    }
}

extension Array where Element == UInt8 {
    mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    /// Appends doubles as little-endian IEEE-754 bit patterns (NaN payloads preserved).
    mutating func appendLittleEndian(_ values: [Double]) {
        #if _endian(little)
        values.withUnsafeBytes { append(contentsOf: $0) }
        #else
        for value in values { appendLittleEndian(value.bitPattern) }
        #endif
    }
}

extension Collection where Element == UInt8, Index == Int {
    /// Reads an integer at a byte offset relative to `startIndex`. Callers check the length.
    func readLittleEndian<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        if let value = withContiguousStorageIfAvailable({ buffer in
            UnsafeRawBufferPointer(buffer).loadUnaligned(fromByteOffset: offset, as: T.self)
        }) {
            return T(littleEndian: value)
        }
        var value = T.zero
        Swift.withUnsafeMutableBytes(of: &value) { raw in
            for i in 0..<MemoryLayout<T>.size { raw[i] = self[startIndex + offset + i] }
        }
        return T(littleEndian: value)
    }
}

extension ArraySlice where Element == UInt8 {
    /// `count` doubles starting at byte `offset` relative to `startIndex`.
    func readDoubles(at offset: Int, count: Int) -> [Double] {
        [Double](unsafeUninitializedCapacity: count) { buffer, initialized in
            withUnsafeBytes { raw in
                let source = UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + count * 8)])
                #if _endian(little)
                UnsafeMutableRawBufferPointer(buffer).copyMemory(from: source)
                #else
                for i in 0..<count { buffer[i] = Double(bitPattern: UInt64(littleEndian: source.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))) }
                #endif
            }
            initialized = count
        }
    }
}

/// Version of the key layout and of the value format; part of every key and every value, so a
/// format change never reads old entries (they age out or are swept by the next purge).
/// 2: values carry their key's identity; keys name the source instance and file fingerprints.
package enum CacheSchema {
    package static let version: UInt16 = 2
}
