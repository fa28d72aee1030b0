import BacktestCore
// protobuf-c.h reaches Swift through both C modules; which one owns its enum constants depends
// on build order, so import both.
import CBacktestProto
import CProtobufC

/// Walks protobuf wire bytes with the message's descriptor and rejects nesting deeper than a
/// bound, before protobuf-c (which recurses on the C stack) unpacks them. Also rejects bytes that
/// are not well-formed wire data, so protobuf-c only sees plausible input.
enum WireDepthCheck {
    /// PROTOBUF_C_TYPE_MESSAGE: its ordinal in protobuf-c.h's ProtobufCType. Spelled as a number
    /// because the constant does not import in the sanitizer (fuzzer) build of this toolchain.
    private static let messageType: UInt32 = 16

    static func check(_ bytes: UnsafeRawBufferPointer, descriptor: UnsafePointer<ProtobufCMessageDescriptor>,
                      maxDepth: Int, what: String) throws {
        var reader = Reader(bytes: bytes, position: 0, end: bytes.count)
        try walk(&reader, descriptor: descriptor, depth: 0, maxDepth: maxDepth, what: what)
    }

    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        var position: Int
        var end: Int

        mutating func varint() -> UInt64? {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while position < end, shift < 64 {
                let byte = bytes[position]
                position += 1
                value |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
            }
            return nil
        }

        mutating func skip(_ count: UInt64) -> Bool {
            guard count <= UInt64(end - position) else { return false }
            position += Int(count)
            return true
        }
    }

    private static func walk(_ reader: inout Reader, descriptor: UnsafePointer<ProtobufCMessageDescriptor>,
                             depth: Int, maxDepth: Int, what: String) throws {
        let malformed = BacktestError.invalidArgument("\(what) is not a valid protobuf message")
        guard depth <= maxDepth else {
            throw BacktestError.invalidArgument("\(what) nests messages deeper than \(maxDepth) levels")
        }
        while reader.position < reader.end {
            guard let tag = reader.varint(), tag >> 3 != 0, tag >> 3 <= UInt64(UInt32.max) else { throw malformed }
            switch tag & 7 {
            case 0: guard reader.varint() != nil else { throw malformed }
            case 1: guard reader.skip(8) else { throw malformed }
            case 5: guard reader.skip(4) else { throw malformed }
            case 2:
                guard let length = reader.varint(), length <= UInt64(reader.end - reader.position) else { throw malformed }
                let field = protobuf_c_message_descriptor_get_field(descriptor, UInt32(tag >> 3))
                if let field, field.pointee.type.rawValue == messageType, let nested = field.pointee.descriptor {
                    var inner = Reader(bytes: reader.bytes, position: reader.position, end: reader.position + Int(length))
                    try walk(&inner, descriptor: nested.assumingMemoryBound(to: ProtobufCMessageDescriptor.self),
                             depth: depth + 1, maxDepth: maxDepth, what: what)
                }
                reader.position += Int(length)
            default: throw malformed  // groups (3, 4) are not proto3; 6 and 7 do not exist
            }
        }
    }
}
