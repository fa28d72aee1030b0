import BacktestCore
import CBacktestProto
import CProtobufC
import NIOCore

/// Limits applied while decoding one protobuf message.
public struct DecodeLimits: Sendable, Hashable {
    /// Bytes protobuf-c may allocate for the unpacked message (its in-memory expansion).
    public var memoryBudget: Int
    /// Deepest nesting of sub-messages (conditions nest). protobuf-c unpacks recursively on the C
    /// stack, so depth is checked on the wire bytes before protobuf-c sees them.
    public var maxDepth: Int

    public init(memoryBudget: Int = 64 * 1024 * 1024, maxDepth: Int = 48) {
        self.memoryBudget = memoryBudget
        self.maxDepth = maxDepth
    }

    public static let `default` = DecodeLimits()
}

/// One generated protobuf-c message type: how to find its descriptor.
///
/// The descriptor pointer is taken from a freshly initialised struct, which points at the real
/// global descriptor (taking the address of the imported global could yield a temporary copy).
struct ProtobufMessageType<CMessage>: @unchecked Sendable {
    let descriptor: UnsafePointer<ProtobufCMessageDescriptor>
    let initialize: (UnsafeMutablePointer<CMessage>) -> Void

    init(_ initialize: @escaping (UnsafeMutablePointer<CMessage>) -> Void) {
        self.initialize = initialize
        let scratch = UnsafeMutablePointer<CMessage>.allocate(capacity: 1)
        defer { scratch.deallocate() }
        initialize(scratch)
        self.descriptor = UnsafeMutableRawPointer(scratch).assumingMemoryBound(to: ProtobufCMessage.self).pointee.descriptor
    }

    /// Unpacks `bytes`, hands the C struct to `convert`, and frees it with the same allocator.
    func decode<R>(_ bytes: ByteBuffer, limits: DecodeLimits, what: String,
                   _ convert: (UnsafePointer<CMessage>) throws -> R) throws -> R {
        try bytes.withUnsafeReadableBytes { raw in
            try WireDepthCheck.check(raw, descriptor: descriptor, maxDepth: limits.maxDepth, what: what)
            let budget = DecodeBudget(limit: limits.memoryBudget)
            return try budget.withAllocator { allocator in
                let base = raw.baseAddress?.assumingMemoryBound(to: UInt8.self)
                guard let message = protobuf_c_message_unpack(descriptor, allocator, raw.count, base) else {
                    if budget.exceeded {
                        throw BacktestError(.resourceExhausted,
                            "\(what) needs more than the decode memory budget of \(limits.memoryBudget) bytes")
                    }
                    throw BacktestError.invalidArgument("\(what) is not a valid protobuf message")
                }
                defer { protobuf_c_message_free_unpacked(message, allocator) }
                return try convert(UnsafeRawPointer(message).assumingMemoryBound(to: CMessage.self))
            }
        }
    }

    /// Builds a C struct with `fill` in a scratch arena, packs it after `buffer`'s writer index and
    /// frees everything the build allocated.
    func encode(into buffer: inout ByteBuffer, _ fill: (UnsafeMutablePointer<CMessage>, ScratchArena) -> Void) {
        let arena = ScratchArena()
        defer { arena.releaseAll() }
        let message = arena.message(self)
        fill(message, arena)
        let base = UnsafeRawPointer(message).assumingMemoryBound(to: ProtobufCMessage.self)
        let size = protobuf_c_message_get_packed_size(base)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { out in
            guard size > 0 else { return 0 }
            return protobuf_c_message_pack(base, out.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
    }
}
