import BacktestCore
import CBacktestProto
import NIOCore

/// The server's limits, sent in the SETTINGS frame right after a valid preface.
public struct ConnectionSettings: WireMessage, Hashable {
    public var protocolVersion: UInt32
    public var maxFramePayload: UInt32
    public var maxConcurrentStreams: UInt32
    public var keepaliveIntervalMs: UInt32
    public var idleTimeoutMs: UInt32
    public var maxTimeoutMs: UInt32
    public var serverVersion: String

    public init(protocolVersion: UInt32 = UInt32(Wire.protocolVersion), maxFramePayload: UInt32,
                maxConcurrentStreams: UInt32, keepaliveIntervalMs: UInt32, idleTimeoutMs: UInt32,
                maxTimeoutMs: UInt32, serverVersion: String) {
        self.protocolVersion = protocolVersion
        self.maxFramePayload = maxFramePayload
        self.maxConcurrentStreams = maxConcurrentStreams
        self.keepaliveIntervalMs = keepaliveIntervalMs
        self.idleTimeoutMs = idleTimeoutMs
        self.maxTimeoutMs = maxTimeoutMs
        self.serverVersion = serverVersion
    }

    public static func decode(_ bytes: ByteBuffer, limits: DecodeLimits) throws -> ConnectionSettings {
        try PB.connectionSettings.decode(bytes, limits: limits, what: "Settings") { c in
            let m = c.pointee
            return ConnectionSettings(protocolVersion: m.protocol_version, maxFramePayload: m.max_frame_payload,
                                      maxConcurrentStreams: m.max_concurrent_streams,
                                      keepaliveIntervalMs: m.keepalive_interval_ms, idleTimeoutMs: m.idle_timeout_ms,
                                      maxTimeoutMs: m.max_timeout_ms, serverVersion: string(m.server_version))
        }
    }

    public func encode(into buffer: inout ByteBuffer) {
        PB.connectionSettings.encode(into: &buffer) { m, arena in
            m.pointee.protocol_version = protocolVersion
            m.pointee.max_frame_payload = maxFramePayload
            m.pointee.max_concurrent_streams = maxConcurrentStreams
            m.pointee.keepalive_interval_ms = keepaliveIntervalMs
            m.pointee.idle_timeout_ms = idleTimeoutMs
            m.pointee.max_timeout_ms = maxTimeoutMs
            m.pointee.server_version = arena.cString(serverVersion)
        }
    }
}

/// PING payload; the ACK echoes it.
package struct PingMessage: WireMessage, Hashable {
    package var opaque: UInt64
    package init(opaque: UInt64) { self.opaque = opaque }

    package static func decode(_ bytes: ByteBuffer, limits: DecodeLimits) throws -> PingMessage {
        try PB.ping.decode(bytes, limits: limits, what: "Ping") { PingMessage(opaque: $0.pointee.opaque) }
    }

    package func encode(into buffer: inout ByteBuffer) {
        PB.ping.encode(into: &buffer) { m, _ in m.pointee.opaque = opaque }
    }
}

/// CANCEL payload.
package struct CancelMessage: WireMessage, Hashable {
    package var reason: String
    package init(reason: String = "") { self.reason = reason }

    package static func decode(_ bytes: ByteBuffer, limits: DecodeLimits) throws -> CancelMessage {
        try PB.cancel.decode(bytes, limits: limits, what: "Cancel") { CancelMessage(reason: string($0.pointee.reason)) }
    }

    package func encode(into buffer: inout ByteBuffer) {
        PB.cancel.encode(into: &buffer) { m, arena in m.pointee.reason = arena.cString(reason) }
    }
}

/// GOAWAY payload: streams up to `lastStreamID` will be finished; later ones were not processed
/// (a client may retry them on a new connection).
package struct GoAwayMessage: WireMessage, Hashable {
    package var lastStreamID: UInt32
    package var status: CallStatus

    package init(lastStreamID: UInt32, status: CallStatus) {
        self.lastStreamID = lastStreamID
        self.status = status
    }

    package static func decode(_ bytes: ByteBuffer, limits: DecodeLimits) throws -> GoAwayMessage {
        try PB.goAway.decode(bytes, limits: limits, what: "GoAway") { c in
            GoAwayMessage(lastStreamID: c.pointee.last_stream_id, status: ResultConversion.status(c.pointee.status))
        }
    }

    package func encode(into buffer: inout ByteBuffer) {
        PB.goAway.encode(into: &buffer) { m, arena in
            m.pointee.last_stream_id = lastStreamID
            m.pointee.status = arena.status(status)
        }
    }
}
