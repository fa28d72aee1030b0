import NIOCore

/// The kind of a frame: the byte at offset 8 of the frame header.
///
/// A struct rather than an enum so that a decoder can hand an unknown type to its owner, which
/// ignores it (room for extensions, as in HTTP/2) instead of failing.
package struct FrameType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    package var rawValue: UInt8
    package init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Opens a stream; payload `CallRequest`. Client to server.
    package static let request = FrameType(rawValue: 0x01)
    /// One message of a server-streaming call (RunBatch: a `ProgressUpdate`).
    package static let data = FrameType(rawValue: 0x02)
    /// Ends a stream, exactly once; payload `CallResponse` with the status.
    package static let response = FrameType(rawValue: 0x03)
    /// Ends a stream early; payload `Cancel`. Either side; no RESPONSE follows.
    package static let cancel = FrameType(rawValue: 0x04)
    /// Liveness check on stream 0; payload `Ping`, answered with the ACK flag and the same payload.
    package static let ping = FrameType(rawValue: 0x05)
    /// The sender accepts no new streams; payload `GoAway`.
    package static let goAway = FrameType(rawValue: 0x06)
    /// The server's limits, first frame after the preface; payload `Settings`.
    package static let settings = FrameType(rawValue: 0x07)

    package var description: String {
        switch self {
        case .request: "REQUEST"
        case .data: "DATA"
        case .response: "RESPONSE"
        case .cancel: "CANCEL"
        case .ping: "PING"
        case .goAway: "GOAWAY"
        case .settings: "SETTINGS"
        default: "UNKNOWN(\(rawValue))"
        }
    }
}

/// Flag bits: the byte at offset 9 of the frame header. Undefined bits are ignored.
package struct FrameFlags: OptionSet, Hashable, Sendable {
    package var rawValue: UInt8
    package init(rawValue: UInt8) { self.rawValue = rawValue }

    /// On a PING: this is the answer to a PING with the same payload.
    package static let ack = FrameFlags(rawValue: 0x01)
}

/// One frame: the 10-byte header's fields and the payload (a serialized protobuf message).
package struct Frame: Sendable, Equatable, CustomStringConvertible {
    package var type: FrameType
    package var flags: FrameFlags
    /// 0 for connection control (PING, GOAWAY, SETTINGS); odd for client-opened streams.
    package var streamID: UInt32
    package var payload: ByteBuffer

    package init(type: FrameType, flags: FrameFlags = [], streamID: UInt32, payload: ByteBuffer) {
        self.type = type
        self.flags = flags
        self.streamID = streamID
        self.payload = payload
    }

    package var description: String {
        "\(type) stream=\(streamID) flags=\(flags.rawValue) bytes=\(payload.readableBytes)"
    }
}

/// Sizes and constants of the wire format (PROTOCOL.md, "Framing").
public enum Wire {
    /// The protocol version this implementation speaks (the preface's u16).
    public static let protocolVersion: UInt16 = 1
    /// Payload length (u32) + stream id (u32) + type (u8) + flags (u8), big-endian.
    public static let frameHeaderSize = 10
    /// ASCII "BACKTEST": the first 8 bytes a client sends.
    public static let prefaceMagic: [UInt8] = Array("BACKTEST".utf8)
    /// Magic + u16 big-endian protocol version.
    public static let prefaceSize = 10
    /// Default bound on a frame's payload, checked from the header before anything is buffered.
    public static let defaultMaxFramePayload = 4 * 1024 * 1024
    /// Stream ids are u32 but stay below 2^31 (room for server-initiated streams later).
    public static let maxStreamID: UInt32 = 0x7FFF_FFFF

    /// Writes the client's connection preface.
    public static func writePreface(into buffer: inout ByteBuffer, version: UInt16 = protocolVersion) {
        buffer.writeBytes(prefaceMagic)
        buffer.writeInteger(version, endianness: .big)
    }
}
