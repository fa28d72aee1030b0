import CHiredis

/// A Redis reply copied out of hiredis' memory, so it outlives `freeReplyObject`.
///
/// Bulk strings stay bytes (`[UInt8]`): cached values are binary and never go through `String`.
package enum RedisReply: Sendable, Equatable {
    case bulk([UInt8])
    case status(String)
    case integer(Int64)
    case array([RedisReply])
    case null
    /// A `-ERR ...` reply: the command was wrong, the connection is still fine.
    case error(String)

    /// Copies a hiredis reply tree. Unknown (RESP3) types are read as `.null`.
    init(copying reply: UnsafePointer<redisReply>) {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            self = .bulk(RedisReply.bytes(r.str, r.len))
        case REDIS_REPLY_STATUS:
            self = .status(String(decoding: RedisReply.bytes(r.str, r.len), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            self = .error(String(decoding: RedisReply.bytes(r.str, r.len), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            self = .integer(Int64(r.integer))
        case REDIS_REPLY_ARRAY:
            var elements: [RedisReply] = []
            elements.reserveCapacity(Int(r.elements))
            for i in 0..<Int(r.elements) {
                if let element = r.element?[i] {
                    elements.append(RedisReply(copying: element))
                } else {
                    elements.append(.null)
                }
            }
            self = .array(elements)
        default:
            self = .null
        }
    }

    private static func bytes(_ pointer: UnsafeMutablePointer<CChar>?, _ count: Int) -> [UInt8] {
        guard let pointer, count > 0 else { return [] }
        return pointer.withMemoryRebound(to: UInt8.self, capacity: count) {
            Array(UnsafeBufferPointer(start: $0, count: count))
        }
    }

    /// The bytes of a bulk reply; nil for `.null` and anything else.
    package var bytes: [UInt8]? {
        if case .bulk(let bytes) = self { return bytes }
        return nil
    }

    package var integer: Int64? {
        switch self {
        case .integer(let value): value
        case .bulk(let bytes): Int64(String(decoding: bytes, as: UTF8.self))
        default: nil
        }
    }
}

/// Why a Redis call did not produce a reply.
package enum RedisFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// Redis cannot be reached, timed out, or the connection broke: the caller treats it as a miss.
    case unavailable(String)
    /// Redis answered with an error reply (a bug in the command, or a server-side refusal).
    case replyError(String)

    package var description: String {
        switch self {
        case .unavailable(let why): "Redis unavailable: \(why)"
        case .replyError(let why): "Redis error reply: \(why)"
        }
    }
}
