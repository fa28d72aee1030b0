import BacktestProtocol
import NIOCore
import NIOPosix

/// A bare TCP connection to a backtestd server that writes exactly the bytes its user wants
/// (garbage, bad prefaces, partial frames trickled a byte at a time, CANCEL, oversized fields,
/// protocol violations) and reads the frames and the close the server answers with.
///
/// The one raw-frame client of the package: the server tests feed the server malformed input
/// through it, and `backtest-bench loadtest --hostile N` (BacktestBench's `HostileClients`) plays
/// its hostile cases over it. The client library (BacktestClient) never sends such bytes.
///
/// One task reads (`next()`, `next(timeout:)` and the helpers built on them); any task may write.
package final class RawConnection: Sendable {
    /// What the server sent: a decoded frame, or the close of the connection.
    package enum Event: Sendable {
        case frame(Frame)
        case closed
    }

    /// The connection's NIO channel (for options and for closing it from outside).
    package let channel: any Channel
    private let continuation: AsyncStream<Item>.Continuation
    private let reader: Reader

    /// What the stream carries: the server's events and the reader's own timeouts.
    private enum Item: Sendable {
        case frame(Frame)
        case closed
        /// The timeout of the `next(timeout:)` call numbered so.
        case timeout(UInt64)
    }

    private final class Reader: @unchecked Sendable {
        // Used by the one reading task only.
        var iterator: AsyncStream<Item>.AsyncIterator
        var nextToken: UInt64 = 0
        init(_ iterator: AsyncStream<Item>.AsyncIterator) { self.iterator = iterator }
    }

    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = InboundFrame
        let continuation: AsyncStream<Item>.Continuation
        init(_ continuation: AsyncStream<Item>.Continuation) { self.continuation = continuation }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            if case .frame(let frame) = unwrapInboundIn(data) { continuation.yield(.frame(frame)) }
        }
        func channelInactive(context: ChannelHandlerContext) {
            continuation.yield(.closed)
            continuation.finish()
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }

    /// Connects to `host`:`port`; no preface is sent.
    ///
    /// - Parameters:
    ///   - connectTimeout: how long connecting may take (nil: NIO's default).
    ///   - readNothing: no handlers and autoRead off, a peer that never reads what it is sent
    ///     (`next()` then never returns).
    ///   - receiveBuffer: the socket's SO_RCVBUF in bytes, to make a non-reading peer's socket
    ///     fill early (nil for the system's).
    ///   - sendBuffer: the socket's SO_SNDBUF in bytes (nil for the system's, which grows to
    ///     megabytes): small, a write to a peer that does not read copies little into the kernel.
    /// - Throws: NIO's connect errors.
    package init(
        host: String = "127.0.0.1", port: Int, connectTimeout: TimeAmount? = nil, readNothing: Bool = false,
        receiveBuffer: Int? = nil, sendBuffer: Int? = nil
    ) async throws {
        let (stream, continuation) = AsyncStream.makeStream(of: Item.self)
        self.continuation = continuation
        reader = Reader(stream.makeAsyncIterator())
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        if let connectTimeout { bootstrap = bootstrap.connectTimeout(connectTimeout) }
        if let receiveBuffer { bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBuffer)) }
        if let sendBuffer { bootstrap = bootstrap.channelOption(.socketOption(.so_sndbuf), value: SocketOptionValue(sendBuffer)) }
        channel = try await bootstrap
            .channelOption(.autoRead, value: !readNothing)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard !readNothing else { return }
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(FrameDecoder(maxPayload: 64 << 20, expectPreface: false)))
                    try channel.pipeline.syncOperations.addHandler(Collector(continuation))
                }
            }
            .connect(host: host, port: port).get()
    }

    /// Connects, sends the preface and waits for the server's SETTINGS.
    ///
    /// - Parameter timeout: bounds the connect and, separately, the wait for SETTINGS (nil: NIO's
    ///   default connect timeout and no bound on the wait).
    /// - Returns: the connection and the server's SETTINGS.
    /// - Throws: NIO's connect and write errors; `RawConnectionError` when the server closes or
    ///   sends another frame first, or nothing comes within `timeout` (the connection is closed);
    ///   a decode error for malformed SETTINGS.
    package static func handshake(
        host: String = "127.0.0.1", port: Int, timeout: Duration? = nil, sendBuffer: Int? = nil
    ) async throws -> (RawConnection, ConnectionSettings) {
        let connection = try await RawConnection(
            host: host, port: port, connectTimeout: timeout.map(TimeAmount.init), sendBuffer: sendBuffer)
        var preface = ByteBuffer()
        Wire.writePreface(into: &preface)
        try await connection.send(preface)
        let first: Event?
        if let timeout { first = await connection.next(timeout: timeout) } else { first = await connection.next() }
        guard case .frame(let frame)? = first, frame.type == .settings else {
            await connection.close()
            throw RawConnectionError("no SETTINGS after the preface")
        }
        return (connection, try ConnectionSettings.decode(frame.payload))
    }

    /// Writes `bytes` as they are.
    package func send(_ bytes: ByteBuffer) async throws {
        try await channel.writeAndFlush(bytes).get()
    }

    /// Writes one frame (header and payload).
    package func send(_ frame: Frame) async throws {
        var buffer = ByteBuffer()
        FrameEncoder.write(frame, into: &buffer)
        try await send(buffer)
    }

    /// Writes a REQUEST frame of `request` on stream `streamID`.
    package func sendRequest(_ streamID: UInt32, _ request: CallRequest) async throws {
        try await send(Frame(type: .request, streamID: streamID, payload: request.encoded()))
    }

    /// Writes a REQUEST frame of an already encoded CallRequest on stream `streamID`.
    package func sendRequest(_ streamID: UInt32, _ payload: ByteBuffer) async throws {
        try await send(Frame(type: .request, streamID: streamID, payload: payload))
    }

    /// The next frame or the close; nil once closed.
    package func next() async -> Event? {
        while let item = await reader.iterator.next() {
            switch item {
            case .frame(let frame): return .frame(frame)
            case .closed: return .closed
            case .timeout: continue  // a stale timer of an earlier `next(timeout:)`
            }
        }
        return nil
    }

    /// The next frame or the close (`.closed` also once closed), or nil when nothing came
    /// within `timeout`.
    package func next(timeout: Duration) async -> Event? {
        reader.nextToken += 1
        let token = reader.nextToken
        let continuation = self.continuation
        let timer = channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) { continuation.yield(.timeout(token)) }
        defer { timer.cancel() }
        while let item = await reader.iterator.next() {
            switch item {
            case .timeout(let fired):
                if fired == token { return nil }  // older timers are stale
            case .frame(let frame):
                return .frame(frame)
            case .closed:
                return .closed
            }
        }
        return .closed
    }

    /// Skips frames until one matches (keepalive PINGs, for example); nil if the connection closed.
    package func nextFrame(where predicate: (Frame) -> Bool = { _ in true }) async -> Frame? {
        while let event = await next() {
            if case .frame(let frame) = event, predicate(frame) { return frame }
            if case .closed = event { return nil }
        }
        return nil
    }

    /// Waits for the GOAWAY and the close that follows it.
    ///
    /// - Throws: `RawConnectionError` when the connection closes without a GOAWAY; a decode
    ///   error for a malformed one.
    package func expectGoAwayAndClose() async throws -> GoAwayMessage {
        guard let frame = await nextFrame(where: { $0.type == .goAway }) else { throw RawConnectionError("closed without GOAWAY") }
        let goAway = try GoAwayMessage.decode(frame.payload)
        await waitClosed()
        return goAway
    }

    /// Waits until the server closed the connection.
    package func waitClosed() async {
        while let event = await next() {
            if case .closed = event { return }
        }
    }

    /// Closes the connection (nothing happens if it is closed already).
    package func close() async {
        try? await channel.close().get()
    }
}

/// What `RawConnection` saw instead of what the protocol promises (no SETTINGS after the
/// preface, a close without GOAWAY), in words.
package struct RawConnectionError: Error, CustomStringConvertible {
    package let description: String
    package init(_ description: String) { self.description = description }
}
