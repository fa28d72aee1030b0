import NIOCore

/// Why a byte stream could not be read as frames. Every case is a connection-level error: the
/// receiver answers (when it can) with a GOAWAY and closes, because framing cannot resynchronise.
package enum FrameDecodingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The first bytes are not "BACKTEST" (an HTTP request, a TLS ClientHello, garbage...).
    case badPreface(firstBytes: [UInt8])
    /// The preface is ours but names a version this side does not speak.
    case unsupportedVersion(UInt16)
    /// The header announces more payload than allowed; nothing of it was buffered.
    case payloadTooLarge(length: UInt32, limit: Int)

    package var description: String {
        switch self {
        case .badPreface: "the connection does not start with the BACKTEST preface"
        case .unsupportedVersion(let version): "protocol version \(version) is not supported (this server speaks \(Wire.protocolVersion))"
        case .payloadTooLarge(let length, let limit): "frame payload of \(length) bytes exceeds the limit of \(limit) bytes"
        }
    }
}

/// What the decoder produces: the client's preface once, then frames.
package enum InboundFrame: Sendable, Equatable {
    case preface(version: UInt16)
    case frame(Frame)
}

/// Turns bytes into frames. The length is checked from the 10-byte header alone, so an oversized
/// frame is rejected before a byte of its payload is held in memory.
///
/// A server decoder starts by expecting the connection preface; it rejects a wrong magic as soon as
/// the first mismatching byte arrives (an HTTP client is refused after "G", not after 10 bytes).
/// A pure value type so the fuzzer and tests can drive it without a channel.
package struct FrameDecoder: NIOSingleStepByteToMessageDecoder {
    package typealias InboundOut = InboundFrame

    package let maxPayload: Int
    private var expectingPreface: Bool
    /// The payload length of the frame being received, once its header is in and until the frame
    /// is whole (nil otherwise): what the server reserves before reading the rest
    /// (`InboundMemoryBudget`).
    package private(set) var awaitedPayloadLength: Int?

    package init(maxPayload: Int = Wire.defaultMaxFramePayload, expectPreface: Bool) {
        self.maxPayload = maxPayload
        self.expectingPreface = expectPreface
    }

    package mutating func decode(buffer: inout ByteBuffer) throws -> InboundFrame? {
        if expectingPreface {
            return try decodePreface(&buffer)
        }
        awaitedPayloadLength = nil
        guard buffer.readableBytes >= Wire.frameHeaderSize,
              let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self)
        else { return nil }
        guard Int(length) <= maxPayload else {
            throw FrameDecodingError.payloadTooLarge(length: length, limit: maxPayload)
        }
        guard buffer.readableBytes >= Wire.frameHeaderSize + Int(length) else {
            awaitedPayloadLength = Int(length)
            return nil
        }
        guard let (_, streamID, type, flags) = buffer.readMultipleIntegers(
            endianness: .big, as: (UInt32, UInt32, UInt8, UInt8).self),
            let payload = buffer.readSlice(length: Int(length))
        else { return nil }
        return .frame(Frame(type: FrameType(rawValue: type), flags: FrameFlags(rawValue: flags),
                            streamID: streamID, payload: payload))
    }

    package mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> InboundFrame? {
        try decode(buffer: &buffer)
    }

    private mutating func decodePreface(_ buffer: inout ByteBuffer) throws -> InboundFrame? {
        let available = min(buffer.readableBytes, Wire.prefaceMagic.count)
        let seen = buffer.getBytes(at: buffer.readerIndex, length: available) ?? []
        guard seen.elementsEqual(Wire.prefaceMagic.prefix(available)) else {
            throw FrameDecodingError.badPreface(firstBytes: Array(seen.prefix(8)))
        }
        guard buffer.readableBytes >= Wire.prefaceSize else { return nil }
        buffer.moveReaderIndex(forwardBy: Wire.prefaceMagic.count)
        guard let version = buffer.readInteger(endianness: .big, as: UInt16.self) else { return nil }
        guard version == Wire.protocolVersion else { throw FrameDecodingError.unsupportedVersion(version) }
        expectingPreface = false
        return .preface(version: version)
    }
}

/// Writes frames: header then payload. Also a `MessageToByteEncoder` for client pipelines.
package struct FrameEncoder: MessageToByteEncoder, Sendable {
    package typealias OutboundIn = Frame

    package init() {}

    package func encode(data frame: Frame, out: inout ByteBuffer) throws {
        FrameEncoder.write(frame, into: &out)
    }

    /// Appends `frame` to `buffer`. The caller is responsible for the payload bound.
    package static func write(_ frame: Frame, into buffer: inout ByteBuffer) {
        var payload = frame.payload
        buffer.reserveCapacity(minimumWritableBytes: Wire.frameHeaderSize + payload.readableBytes)
        buffer.writeMultipleIntegers(
            UInt32(payload.readableBytes), frame.streamID, frame.type.rawValue, frame.flags.rawValue,
            endianness: .big)
        buffer.writeBuffer(&payload)
    }
}
