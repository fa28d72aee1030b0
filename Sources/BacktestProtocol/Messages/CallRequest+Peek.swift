import NIOCore

extension CallRequest {
    /// `header.timeout_ms` read straight from the encoded CallRequest, without decoding the rest:
    /// for a large request, whose deadline must run from its arrival while it waits for room to
    /// be decoded (the server's request memory budget), and whose decoding is skipped once the
    /// deadline has passed. nil when the payload is not well formed that far (decoding will
    /// say why); 0 when the field is absent (proto3 default: the server's maximum).
    /// Scans the top-level fields for `header` (1, length-delimited) and, inside, `timeout_ms`
    /// (1, varint); as protobuf merges repeated embedded messages, the last value wins.
    package static func peekTimeoutMs(_ payload: ByteBuffer) -> UInt32? {
        payload.withUnsafeReadableBytes { bytes -> UInt32? in
            var timeout: UInt64 = 0
            var outer = WireScanner(bytes[...])
            while !outer.isAtEnd {
                guard let (field, wireType) = outer.tag() else { return nil }
                if field == 1, wireType == 2 {
                    guard var inner = outer.lengthDelimited() else { return nil }
                    while !inner.isAtEnd {
                        guard let (innerField, innerType) = inner.tag() else { return nil }
                        if innerField == 1, innerType == 0 {
                            guard let value = inner.varint() else { return nil }
                            timeout = value
                        } else if !inner.skip(wireType: innerType) {
                            return nil
                        }
                    }
                } else if !outer.skip(wireType: wireType) {
                    return nil
                }
            }
            return UInt32(truncatingIfNeeded: timeout)
        }
    }
}

/// Reads protobuf wire format: varints, tags, and skipping a field by its wire type.
private struct WireScanner {
    private var bytes: Slice<UnsafeRawBufferPointer>

    init(_ bytes: Slice<UnsafeRawBufferPointer>) { self.bytes = bytes }

    var isAtEnd: Bool { bytes.isEmpty }

    mutating func varint() -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while let byte = bytes.first, shift < 64 {
            bytes = bytes.dropFirst()
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
        return nil
    }

    mutating func tag() -> (field: UInt64, wireType: UInt64)? {
        guard let tag = varint() else { return nil }
        return (tag >> 3, tag & 7)
    }

    mutating func lengthDelimited() -> WireScanner? {
        guard let length = varint(), length <= UInt64(bytes.count) else { return nil }
        let inner = bytes.prefix(Int(length))
        bytes = bytes.dropFirst(Int(length))
        return WireScanner(inner)
    }

    mutating func skip(wireType: UInt64) -> Bool {
        switch wireType {
        case 0: return varint() != nil
        case 1: return skip(count: 8)
        case 2: return lengthDelimited() != nil
        case 5: return skip(count: 4)
        default: return false
        }
    }

    private mutating func skip(count: Int) -> Bool {
        guard bytes.count >= count else { return false }
        bytes = bytes.dropFirst(count)
        return true
    }
}
