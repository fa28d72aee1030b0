import BacktestCore
import CBacktestProto
import CProtobufC
import NIOCore

/// Limits applied while decoding one protobuf message.
public struct DecodeLimits: Sendable, Hashable {
    /// Bytes protobuf-c may allocate for the unpacked message (its in-memory expansion).
    public var memoryBudget: Int
    /// Deepest nesting of conditions (PROTOCOL.md, "Limits"): a position's `entry` or `exit` is
    /// level 1, each `all`, `any` or `not` inside adds one. protobuf-c unpacks recursively on the C
    /// stack, so depth is checked on the wire bytes before protobuf-c sees them; other messages
    /// may nest at most `2 * maxDepth + 16` levels (room for the longest path to a condition).
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
        try decode(bytes, limits: limits, what: what, request: false) { message, _ in try convert(message) }
    }

    /// Unpacks a request: `decode`, and also rejects string fields that are not UTF-8 or hold
    /// control characters (`WireCheck`), each error naming its field path. Faults inside one
    /// `run_batch.variants[i]` are handed to `convert` (by variant index) instead of failing the
    /// whole request; such a variant reaches `convert` as an empty message when its fault was
    /// nesting (which protobuf-c must not unpack).
    func decodeRequest<R>(_ bytes: ByteBuffer, limits: DecodeLimits, what: String,
                          _ convert: (UnsafePointer<CMessage>, [Int: BacktestError]) throws -> R) throws -> R {
        try decode(bytes, limits: limits, what: what, request: true, convert)
    }

    private func decode<R>(_ bytes: ByteBuffer, limits: DecodeLimits, what: String, request: Bool,
                           _ convert: (UnsafePointer<CMessage>, [Int: BacktestError]) throws -> R) throws -> R {
        try bytes.withUnsafeReadableBytes { raw in
            let check = WireCheck(
                maxConditionDepth: limits.maxDepth, checkStrings: request, what: what,
                condition: PB.condition.descriptor, isolated: request ? ("run_batch", "variants") : nil)
            let faults = try check.check(raw, descriptor: descriptor)
            var isolated: [Int: BacktestError] = [:]
            for fault in faults where isolated[fault.index] == nil { isolated[fault.index] = fault.error }
            guard faults.contains(where: \.mustBlank) else { return try unpack(raw, limits: limits, what: what) { try convert($0, isolated) } }
            guard let blanked = WireCheck.blanking(raw, faults) else {
                throw faults.first(where: \.mustBlank)!.error
            }
            return try blanked.withUnsafeBytes { copy in
                try unpack(copy, limits: limits, what: what) { try convert($0, isolated) }
            }
        }
    }

    private func unpack<R>(_ raw: UnsafeRawBufferPointer, limits: DecodeLimits, what: String,
                           _ convert: (UnsafePointer<CMessage>) throws -> R) throws -> R {
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
