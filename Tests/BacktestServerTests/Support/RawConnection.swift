import BacktestProtocol
import NIOCore
import NIOPosix

/// A bare TCP connection for feeding the server exactly the bytes a test wants (garbage,
/// partial frames, protocol violations) and observing the frames and the close it answers with.
final class RawConnection: Sendable {
    enum Event: Sendable { case frame(Frame), closed }

    let channel: any Channel
    private let events: AsyncStream<Event>
    private let iterator: IteratorBox

    private final class IteratorBox: @unchecked Sendable {
        var iterator: AsyncStream<Event>.AsyncIterator
        init(_ iterator: AsyncStream<Event>.AsyncIterator) { self.iterator = iterator }
    }

    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = InboundFrame
        let continuation: AsyncStream<Event>.Continuation
        init(_ continuation: AsyncStream<Event>.Continuation) { self.continuation = continuation }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            if case .frame(let frame) = unwrapInboundIn(data) { continuation.yield(.frame(frame)) }
        }
        func channelInactive(context: ChannelHandlerContext) {
            continuation.yield(.closed)
            continuation.finish()
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }

    /// `readNothing`: no handlers and autoRead off, a peer that never reads what it is sent.
    /// `receiveBuffer`: the socket's SO_RCVBUF in bytes, to make a non-reading peer's socket
    /// fill early (nil for the system's).
    init(port: Int, readNothing: Bool = false, receiveBuffer: Int? = nil) async throws {
        let (stream, continuation) = AsyncStream.makeStream(of: Event.self)
        events = stream
        iterator = IteratorBox(stream.makeAsyncIterator())
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        if let receiveBuffer { bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBuffer)) }
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
            .connect(host: "127.0.0.1", port: port).get()
    }

    /// Connects and completes the handshake, returning the server's SETTINGS.
    static func handshake(port: Int) async throws -> (RawConnection, ConnectionSettings) {
        let connection = try await RawConnection(port: port)
        var preface = ByteBuffer()
        Wire.writePreface(into: &preface)
        try await connection.send(preface)
        guard case .frame(let frame) = await connection.next(), frame.type == .settings else {
            throw TestFailure("no SETTINGS after the preface")
        }
        return (connection, try ConnectionSettings.decode(frame.payload))
    }

    func send(_ bytes: ByteBuffer) async throws {
        try await channel.writeAndFlush(bytes).get()
    }

    func send(_ frame: Frame) async throws {
        var buffer = ByteBuffer()
        FrameEncoder.write(frame, into: &buffer)
        try await send(buffer)
    }

    func sendRequest(_ id: UInt32, _ request: CallRequest) async throws {
        try await send(Frame(type: .request, streamID: id, payload: request.encoded()))
    }

    /// The next frame or the close; nil once closed.
    func next() async -> Event? {
        await iterator.iterator.next()
    }

    /// Skips frames until one matches (keepalive PINGs, for example); nil if the connection closed.
    func nextFrame(where predicate: (Frame) -> Bool = { _ in true }) async -> Frame? {
        while let event = await next() {
            if case .frame(let frame) = event, predicate(frame) { return frame }
            if case .closed = event { return nil }
        }
        return nil
    }

    /// Waits for the GOAWAY and the close that follows it.
    func expectGoAwayAndClose() async throws -> GoAwayMessage {
        guard let frame = await nextFrame(where: { $0.type == .goAway }) else { throw TestFailure("closed without GOAWAY") }
        let goAway = try GoAwayMessage.decode(frame.payload)
        await waitClosed()
        return goAway
    }

    /// Waits until the server closed the connection.
    func waitClosed() async {
        while let event = await next() {
            if case .closed = event { return }
        }
    }

    func close() async {
        try? await channel.close()
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
