import BacktestProtocol
import NIOCore

/// Every limit the server enforces, with defaults for a service on a trusted host. Tests shrink the
/// timeouts to milliseconds; `backtestd` exposes each one as a flag and an environment variable.
package struct ServerConfiguration: Sendable {
    /// Loopback by default: exposing the server is a deliberate choice.
    package var host = "127.0.0.1"
    /// 50051, gRPC's customary port; 0 asks the OS for a free one (see `BacktestServer.boundAddress`).
    package var port = 50051

    /// Largest frame payload either side may send; checked from the header before buffering.
    /// At least `minimumMaxFramePayload`.
    package var maxFramePayload = Wire.defaultMaxFramePayload
    /// The smallest frame limit that still fits the protocol's own frames: SETTINGS, GOAWAY, PING
    /// and every error RESPONSE (whose echoed strings `EchoBounds` keeps to a few hundred bytes).
    /// A smaller limit would drop them, and calls would never end.
    package static let minimumMaxFramePayload = 4096
    /// Calls in flight per connection; more are refused with RESOURCE_EXHAUSTED.
    package var maxConcurrentStreams = 256
    /// Calls of one connection whose work runs at once, counting a call until its RESPONSE is
    /// handed to the socket; more wait, in arrival order, with their deadline running. Bounds
    /// what one connection holds in working memory and unsent answers (issue 12: 256 pipelined
    /// calls with 1.8 MB answers, never read, held 957 MB; 10 connections x 256 small calls at
    /// once, 2.9 GB). Batch calls count for as long as they stream.
    package var maxRunningCalls = 8
    /// Open connections; more get a GOAWAY with RESOURCE_EXHAUSTED and are closed.
    package var maxConnections = 1024
    /// Time for a new connection to send the 10-byte preface.
    package var handshakeTimeout = TimeAmount.seconds(5)
    /// A connection with no call in flight and no new REQUEST for this long is closed (GOAWAY OK).
    package var idleTimeout = TimeAmount.minutes(5)
    /// Time for a frame, once its first byte arrived, to arrive whole (slowloris defence).
    package var frameTimeout = TimeAmount.seconds(10)
    /// While calls are in flight the server PINGs this often; a PING unanswered by the next one
    /// closes the connection. `.zero` disables keepalive.
    package var keepaliveInterval = TimeAmount.seconds(30)
    /// Upper bound on a call's deadline; also the deadline of a call that sets none.
    package var maxCallTimeout = TimeAmount.minutes(10)

    /// A call's timeout for its `header.timeout_ms`: that many milliseconds, capped at
    /// `maxCallTimeout`; 0 (none set) is `maxCallTimeout`.
    func callTimeout(requestedMs: UInt32) -> TimeAmount {
        requestedMs == 0 ? maxCallTimeout : min(.milliseconds(Int64(requestedMs)), maxCallTimeout)
    }
    /// Bytes written to a connection but not yet taken by the socket, for all its streams
    /// together. Streams' DATA and RESPONSE frames wait in per-stream queues while it is full
    /// (control frames go ahead of them); a streaming call waits while its own frame is queued or
    /// more than half is buffered. A peer that takes none of it for a keepalive interval (with an
    /// unanswered PING), or an idle period, is not reading and the connection is closed.
    package var maxOutboundBuffer = 8 * 1024 * 1024
    /// Memory and nesting bounds for decoding one request.
    package var decodeLimits = DecodeLimits(memoryBudget: 64 * 1024 * 1024, maxDepth: 48)
    /// Memory that large requests may hold at once while they are decoded and run, in bytes;
    /// more wait their turn (`RequestMemoryBudget`). 64 MiB: one 40,000-position backtest (a
    /// 2 MB payload) at a time; under `loadtest --hostile 5` 128 MiB let the server's peak RSS
    /// reach 520 MB, 48-64 MiB kept it near 475 MB (README).
    package var requestMemoryBudget = 64 * 1024 * 1024
    /// Bytes of incoming frames that may be held at once, server-wide: frames being received and
    /// REQUEST payloads not yet decoded, counting frames over 16 KiB (`InboundMemoryBudget`). A
    /// connection whose next frame does not fit stops being read until it does. 32 MiB: eight
    /// 4 MiB frames; one connection may hold an eighth of it, or one frame if that is more. (With
    /// 64 MiB, `loadtest --hostile 5`, whose connections stall in 4 MiB frames 20 at a time,
    /// peaked at 438-519 MB against its 500 MB target.)
    package var inboundMemoryBudget = 32 * 1024 * 1024
    /// While other connections wait for inbound room, a connection holding room for a frame it is
    /// receiving is closed (GOAWAY RESOURCE_EXHAUSTED) when no byte of that frame arrives for
    /// this long; with nobody waiting only the frame timeout applies. `.zero` disables it. 2 s:
    /// past a TCP retransmission or two, and 100 connections stalling in 4 MiB frames hold up
    /// another client's large request about 25 s instead of 58 s (eight of them hold room at once).
    package var inboundStallTimeout = TimeAmount.seconds(2)
    /// Bytes of output that may be held for clients at once, server-wide: answers built and
    /// waiting to be written, and frames written but not yet taken by the sockets
    /// (`OutputMemoryBudget`). Beyond it, connections are evicted (GOAWAY RESOURCE_EXHAUSTED)
    /// until the rest fit: those holding output without a break for a second first, then the
    /// largest. 128 MiB: one connection holds at
    /// most about 40 MiB (8 running calls' answers of up to 4 MiB and `maxOutboundBuffer`), so a
    /// client alone is never evicted, and three clients that read nothing can hold all of theirs.
    package var outputMemoryBudget = 128 * 1024 * 1024
    /// On graceful shutdown, in-flight calls get this long to finish before they are cancelled.
    package var drainTimeout = TimeAmount.seconds(30)
    /// Reported in SETTINGS, response headers and GetServerInfo.
    package var serverVersion = "0.1.0"

    package init() {}

    var connectionSettings: ConnectionSettings {
        ConnectionSettings(
            maxFramePayload: UInt32(clamping: maxFramePayload), maxConcurrentStreams: UInt32(clamping: maxConcurrentStreams),
            keepaliveIntervalMs: UInt32(clamping: keepaliveInterval.nanoseconds / 1_000_000),
            idleTimeoutMs: UInt32(clamping: idleTimeout.nanoseconds / 1_000_000),
            maxTimeoutMs: UInt32(clamping: maxCallTimeout.nanoseconds / 1_000_000), serverVersion: serverVersion)
    }
}
