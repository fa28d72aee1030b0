import BacktestProtocol
import NIOCore
import NIOPosix

/// A bare TCP connection to a server, for `HostileClients`: it writes exactly the bytes a case
/// wants (bad prefaces, frames trickled a byte at a time, CANCEL, oversized fields) and reads the
/// frames and the close the server answers with.
///
/// One task reads (`next(timeout:)`); any task may write.
final class HostileConnection: Sendable {
    enum Event: Sendable {
        case frame(Frame)
        case closed
        case timeout(UInt64)
    }

    let channel: any Channel
    private let continuation: AsyncStream<Event>.Continuation
    private let reader: Reader

    private final class Reader: @unchecked Sendable {
        // Used by the one reading task only.
        var iterator: AsyncStream<Event>.AsyncIterator
        var nextToken: UInt64 = 0
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

    /// Connects to `host`:`port` (no preface is sent).
    init(host: String, port: Int) async throws {
        let (stream, continuation) = AsyncStream.makeStream(of: Event.self)
        self.continuation = continuation
        reader = Reader(stream.makeAsyncIterator())
        channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(FrameDecoder(maxPayload: 64 << 20, expectPreface: false)))
                    try channel.pipeline.syncOperations.addHandler(Collector(continuation))
                }
            }
            .connect(host: host, port: port).get()
    }

    /// Connects, sends the preface and waits (at most 5 s) for the server's SETTINGS.
    static func handshake(host: String, port: Int) async throws -> (HostileConnection, ConnectionSettings) {
        let connection = try await HostileConnection(host: host, port: port)
        var preface = ByteBuffer()
        Wire.writePreface(into: &preface)
        try await connection.send(preface)
        guard case .frame(let frame)? = await connection.next(timeout: .seconds(5)), frame.type == .settings else {
            await connection.close()
            throw BenchError("no SETTINGS after the preface")
        }
        return (connection, try ConnectionSettings.decode(frame.payload, limits: .default))
    }

    func send(_ bytes: ByteBuffer) async throws {
        try await channel.writeAndFlush(bytes).get()
    }

    func send(_ frame: Frame) async throws {
        var buffer = ByteBuffer()
        FrameEncoder.write(frame, into: &buffer)
        try await send(buffer)
    }

    func sendRequest(_ streamID: UInt32, _ request: CallRequest) async throws {
        try await send(Frame(type: .request, streamID: streamID, payload: request.encoded()))
    }

    /// A REQUEST frame of an already encoded CallRequest.
    func sendRequest(_ streamID: UInt32, _ payload: ByteBuffer) async throws {
        try await send(Frame(type: .request, streamID: streamID, payload: payload))
    }

    /// The next frame or the close, or nil when nothing came within `timeout`.
    func next(timeout: Duration) async -> Event? {
        reader.nextToken += 1
        let token = reader.nextToken
        let continuation = self.continuation
        let nanoseconds = Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
        let timer = channel.eventLoop.scheduleTask(in: .nanoseconds(nanoseconds)) { continuation.yield(.timeout(token)) }
        defer { timer.cancel() }
        while let event = await reader.iterator.next() {
            switch event {
            case .timeout(let fired):
                if fired == token { return nil }  // older timers are stale
            case .frame, .closed:
                return event
            }
        }
        return .closed
    }

    func close() async {
        try? await channel.close().get()
    }
}
