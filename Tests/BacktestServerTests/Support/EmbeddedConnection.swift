import BacktestProtocol
import Logging
import NIOCore
import NIOEmbedded

@testable import BacktestServer

/// A server connection on an `EmbeddedChannel`: the test is the client, and the clock
/// (`advance(by:)` moves the `EmbeddedEventLoop`'s time and runs the timers that fall due).
/// Calls do no work: the handler's `CallStarter` records them, and the test ends them by hand
/// (`finish`) or watches them being cancelled (`calls.cancelled`).
final class EmbeddedConnection {
    /// The calls the handler started and cancelled.
    final class CallLog {
        var started: [UInt32] = []
        var cancelled: Set<UInt32> = []
        /// Each started call's payload, held (with its part of the inbound budget) until the
        /// test releases it, as a call does once it has decoded it.
        var received: [UInt32: ReceivedPayload] = [:]
    }

    /// Counts the `read` requests that reach the socket (the handler withholds them while its
    /// reading is paused).
    final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        var reads = 0
        func read(context: ChannelHandlerContext) {
            reads += 1
            context.read()
        }
    }

    let loop = EmbeddedEventLoop()
    let channel: EmbeddedChannel
    let handler: ServerConnectionHandler
    let calls = CallLog()
    let readCounter = ReadCounter()
    private var pendingBytes = ByteBuffer()
    private var decoder = FrameDecoder(maxPayload: 64 << 20, expectPreface: false)

    /// - Parameter stalledOutput: a socket that never drains: frames the handler writes stay
    ///   buffered in the channel (counted by `bufferedWritableBytes`) and never reach `frames()`.
    /// - Parameter throttle: a socket read at the test's pace (see `ThrottledSocket`).
    /// - Parameter inbound: the server's inbound budget, to share one between connections
    ///   (by default one of the connection's own, from the configuration).
    /// - Parameter output: the server's output budget, likewise.
    init(_ configure: (inout ServerConfiguration) -> Void = { _ in }, stalledOutput: Bool = false,
         throttle: ThrottledSocket? = nil, inbound: InboundMemoryBudget? = nil, output: OutputMemoryBudget? = nil) throws {
        var configuration = ServerConfiguration()
        configure(&configuration)
        var logger = Logger(label: "test.embedded-connection")
        logger.logLevel = .critical
        let calls = self.calls
        handler = ServerConnectionHandler(configuration: configuration, logger: logger, pingOpaque: 100,
                                          inboundMemory: inbound, outputMemory: output) { _, id, received, _ in
            calls.started.append(id)
            calls.received[id] = received
            return ServerConnectionHandler.CallHandle(cancel: { calls.cancelled.insert(id) })
        }
        channel = EmbeddedChannel(loop: loop)
        if stalledOutput { try channel.pipeline.syncOperations.addHandler(StalledSocket()) }
        if let throttle { try channel.pipeline.syncOperations.addHandler(throttle) }
        try channel.pipeline.syncOperations.addHandler(readCounter)
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 50051)).wait()
    }

    deinit {
        _ = try? channel.finish(acceptAlreadyClosed: true)
    }

    var isOpen: Bool { channel.isActive }

    func advance(by amount: TimeAmount) { loop.advanceTime(by: amount) }

    func send(_ bytes: [UInt8]) throws { try send(ByteBuffer(bytes: bytes)) }

    func send(_ buffer: ByteBuffer) throws { try channel.writeInbound(buffer) }

    func send(_ frame: Frame) throws { try send(Self.encode(frame)) }

    func sendPreface() throws {
        var preface = ByteBuffer()
        Wire.writePreface(into: &preface)
        try send(preface)
    }

    /// Sends the preface and checks the SETTINGS answer.
    func handshake() throws {
        try sendPreface()
        guard try frames().map(\.type) == [.settings] else { throw TestFailure("no SETTINGS after the preface") }
    }

    func request(_ id: UInt32, payloadSize: Int = 3) throws {
        try send(Frame(type: .request, streamID: id, payload: ByteBuffer(repeating: 0x5A, count: payloadSize)))
    }

    /// Ends a call the way its work would: with an OK RESPONSE.
    func finish(_ id: UInt32) {
        handler.finish(id, CallResponse(header: ResponseHeader(requestID: "\(id)"), status: CallStatus(code: .ok, message: "")).encoded())
    }

    /// Every whole frame the server wrote since the last call.
    func frames() throws -> [Frame] {
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            pendingBytes.writeImmutableBuffer(buffer)
        }
        var frames: [Frame] = []
        while case .frame(let frame)? = try decoder.decode(buffer: &pendingBytes) { frames.append(frame) }
        pendingBytes.discardReadBytes()
        return frames
    }

    /// The GOAWAY among the frames written since the last call, if any.
    func goAway() throws -> GoAwayMessage? {
        try frames().first { $0.type == .goAway }.map { try GoAwayMessage.decode($0.payload) }
    }

    static func encode(_ frame: Frame) -> ByteBuffer {
        var buffer = ByteBuffer()
        FrameEncoder.write(frame, into: &buffer)
        return buffer
    }

    /// Holds every flush: what is written stays in the channel's pending writes, as with a peer
    /// that stopped reading and a full socket buffer.
    final class StalledSocket: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        func flush(context: ChannelHandlerContext) {}
    }
}
