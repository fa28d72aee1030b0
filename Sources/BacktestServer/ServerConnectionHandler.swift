import BacktestCore
import BacktestProtocol
import BacktestService
import Logging
import NIOCore

/// One connection's protocol state machine, confined to its event loop:
/// preface → SETTINGS → frames, with every per-connection limit enforced here.
///
/// Calls run as tasks (see `CallRunner`); this handler owns their lifetime: it cancels them on
/// CANCEL, deadline, disconnect and forced shutdown, and writes each stream's one RESPONSE.
/// Whichever of "call finished", "deadline", "cancel" happens first ends the stream; the others
/// find it gone and do nothing.
final class ServerConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Phase { case awaitingPreface, open, draining, closed }

    struct ActiveStream {
        var task: Task<Void, Never>?
        var deadlineTimer: Scheduled<Void>?
        var requestID = ""
    }

    let configuration: ServerConfiguration
    let service: any BacktestService
    var logger: Logger

    private(set) var phase = Phase.awaitingPreface
    /// Shared with every call's context; marked before the calls are cancelled on close.
    let connectionState = ConnectionState()
    private(set) var context: ChannelHandlerContext?
    let processor: NIOSingleStepByteToMessageProcessor<FrameDecoder>
    var streams: [UInt32: ActiveStream] = [:]
    private var lastClientStreamID: UInt32 = 0
    /// Whether a REQUEST arrived yet (see `idlePeriod`).
    private(set) var hasReceivedACall = false
    var handshakeTimer, frameTimer, idleTimer, keepaliveTimer: Scheduled<Void>?
    var lastActivity = NIODeadline.now()
    var unansweredPing: UInt64?
    private var pendingOutboundBytes = 0
    private var writabilityWaiters: [EventLoopPromise<Void>] = []

    init(configuration: ServerConfiguration, service: any BacktestService, logger: Logger) {
        self.configuration = configuration
        self.service = service
        self.logger = logger
        self.processor = NIOSingleStepByteToMessageProcessor(
            FrameDecoder(maxPayload: configuration.maxFramePayload, expectPreface: true))
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        handshakeTimer = context.eventLoop.assumeIsolated().scheduleTask(in: configuration.handshakeTimeout) { [self] in
            guard phase == .awaitingPreface else { return }
            logger.debug("closing: no preface within the handshake timeout")
            close()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard phase != .closed else { return }
        do {
            try processor.process(buffer: unwrapInboundIn(data)) { inbound in
                guard phase != .closed else { return }
                switch inbound {
                case .preface: try receivedPreface()
                case .frame(let frame): try receive(frame)
                }
            }
        } catch let error as FrameDecodingError {
            rejectFraming(error)
        } catch let error as ConnectionError {
            failConnection(error.status)
        } catch {
            failConnection(CallStatus(code: .internal, message: "internal error"))
            logger.error("unexpected error while reading frames: \(error)")
        }
        armFrameTimerIfPartial()
    }

    func channelInactive(context: ChannelHandlerContext) {
        phase = .closed
        connectionState.markLost()
        for timer in [handshakeTimer, frameTimer, idleTimer, keepaliveTimer] { timer?.cancel() }
        for (_, stream) in streams {
            stream.task?.cancel()
            stream.deadlineTimer?.cancel()
        }
        if !streams.isEmpty { logger.debug("connection closed with \(streams.count) calls in flight: cancelled") }
        streams.removeAll()
        let waiters = writabilityWaiters
        writabilityWaiters.removeAll()
        for waiter in waiters { waiter.fail(CancellationError()) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error: \(error)")
        close()
    }

    // MARK: Frames

    /// A protocol violation that ends the connection with a GOAWAY.
    struct ConnectionError: Error {
        var status: CallStatus
        init(_ code: StatusCode, _ message: String) { status = CallStatus(code: code, message: message) }
    }

    private func receivedPreface() throws {
        handshakeTimer?.cancel()
        phase = .open
        write(Frame(type: .settings, streamID: 0, payload: configuration.connectionSettings.encoded()))
        lastActivity = .now()
        armIdleTimer()
    }

    private func receive(_ frame: Frame) throws {
        let isControl = frame.type == .ping || frame.type == .settings || frame.type == .goAway
        if isControl, frame.streamID != 0 {
            throw ConnectionError(.invalidArgument, "\(frame.type) frames belong on stream 0, not \(frame.streamID)")
        }
        if frame.type == .cancel, frame.streamID == 0 {
            throw ConnectionError(.invalidArgument, "CANCEL frames need a stream id")
        }
        switch frame.type {
        case .request:
            try receiveRequest(frame)
        case .cancel:
            lastActivity = .now()
            if let stream = streams.removeValue(forKey: frame.streamID) {
                logger.debug("stream \(frame.streamID) cancelled by the client")
                stream.deadlineTimer?.cancel()
                stream.task?.cancel()
                streamEnded()
            }
        case .ping where frame.flags.contains(.ack):
            if let opaque = try? PingMessage.decode(frame.payload, limits: configuration.decodeLimits).opaque,
               opaque == unansweredPing {
                unansweredPing = nil
            }
        case .ping:
            write(Frame(type: .ping, flags: .ack, streamID: 0, payload: frame.payload))
        case .data, .response:
            throw ConnectionError(.invalidArgument, "clients do not send \(frame.type) frames")
        default:
            break  // SETTINGS and GOAWAY from a client carry nothing we act on; unknown types are ignored
        }
    }

    private func receiveRequest(_ frame: Frame) throws {
        let id = frame.streamID
        guard id % 2 == 1, id > lastClientStreamID, id <= Wire.maxStreamID else {
            throw ConnectionError(.invalidArgument,
                "stream id \(id) is not odd and greater than the previous one (\(lastClientStreamID))")
        }
        lastClientStreamID = id
        hasReceivedACall = true
        lastActivity = .now()
        guard phase == .open else {
            return respond(id, CallStatus(code: .unavailable, message: "the server is shutting down; retry on a new connection"))
        }
        guard streams.count < configuration.maxConcurrentStreams else {
            return respond(id, CallStatus(code: .resourceExhausted,
                message: "more than \(configuration.maxConcurrentStreams) concurrent calls on one connection"))
        }
        streams[id] = ActiveStream()
        armKeepaliveIfNeeded()
        let runner = CallRunner(streamID: id, receivedAt: .now(), configuration: configuration, service: service,
                                logger: logger, connection: NIOLoopBound(self, eventLoop: eventLoop),
                                connectionState: connectionState)
        streams[id]?.task = Task { await runner.run(frame.payload) }
    }

    private func rejectFraming(_ error: FrameDecodingError) {
        switch error {
        case .badPreface(let firstBytes):
            logger.debug("closing: not our protocol (first bytes \(firstBytes))")
            close()
        case .unsupportedVersion:
            failConnection(CallStatus(code: .unimplemented, message: error.description))
        case .payloadTooLarge:
            failConnection(CallStatus(code: .resourceExhausted, message: error.description))
        }
    }

    // MARK: Streams (called by CallRunner on the event loop)

    var eventLoop: any EventLoop { context!.eventLoop }

    func isActive(_ id: UInt32) -> Bool { streams[id] != nil }

    /// Starts the deadline once the request is decoded (the timeout is in the request).
    func armDeadline(_ id: UInt32, at deadline: NIODeadline, requestID: String, timeout: TimeAmount) {
        guard streams[id] != nil, let context else { return }
        streams[id]?.requestID = requestID
        streams[id]?.deadlineTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            guard let stream = streams[id] else { return }
            stream.task?.cancel()
            finish(id, CallResponse(
                header: ResponseHeader(requestID: stream.requestID, serverVersion: configuration.serverVersion),
                status: CallStatus(code: .deadlineExceeded, message: "deadline of \(timeout.nanoseconds / 1_000_000) ms exceeded"))
                .encoded(allocator: context.channel.allocator))
        }
    }

    /// Writes a DATA frame; the future completes once the output buffer has room again.
    func writeData(_ id: UInt32, _ payload: ByteBuffer) -> EventLoopFuture<Void> {
        guard streams[id] != nil, phase != .closed else { return eventLoop.makeFailedFuture(CancellationError()) }
        write(Frame(type: .data, streamID: id, payload: payload))
        guard pendingOutboundBytes > configuration.maxOutboundBuffer / 2, phase != .closed else {
            return eventLoop.makeSucceededVoidFuture()
        }
        let waiter = eventLoop.makePromise(of: Void.self)
        writabilityWaiters.append(waiter)
        return waiter.futureResult
    }

    /// Ends a stream with its RESPONSE, unless something else ended it first.
    func finish(_ id: UInt32, _ payload: ByteBuffer) {
        guard let stream = streams.removeValue(forKey: id) else { return }
        stream.deadlineTimer?.cancel()
        write(Frame(type: .response, streamID: id, payload: payload))
        streamEnded()
    }

    private func respond(_ id: UInt32, _ status: CallStatus) {
        let response = CallResponse(header: ResponseHeader(serverVersion: configuration.serverVersion), status: status)
        write(Frame(type: .response, streamID: id, payload: response.encoded()))
    }

    private func streamEnded() {
        lastActivity = .now()
        if phase == .draining, streams.isEmpty {
            logger.debug("drained: closing")
            close()
        }
    }

    // MARK: Shutdown

    /// Graceful shutdown: GOAWAY with the last accepted stream; in-flight calls finish, later
    /// REQUESTs get UNAVAILABLE; the connection closes when the last call ends.
    func beginDrain() {
        switch phase {
        case .awaitingPreface: close()
        case .open:
            phase = .draining
            write(Frame(type: .goAway, streamID: 0, payload: GoAwayMessage(
                lastStreamID: lastClientStreamID, status: CallStatus(code: .ok, message: "server shutting down")).encoded()))
            if streams.isEmpty { close() }
        case .draining, .closed: break
        }
    }

    /// Sends GOAWAY with `status` and closes; in-flight calls are cancelled.
    func failConnection(_ status: CallStatus) {
        guard phase != .closed else { return }
        if status.code != .ok { logger.debug("closing connection: \(status)") }
        write(Frame(type: .goAway, streamID: 0,
                    payload: GoAwayMessage(lastStreamID: lastClientStreamID, status: status).encoded()))
        close()
    }

    func close() {
        guard phase != .closed, let context else { return }
        phase = .closed
        connectionState.markLost()
        context.close(promise: nil)
    }

    // MARK: Output

    func write(_ frame: Frame) {
        guard phase != .closed, let context else { return }
        guard frame.payload.readableBytes <= configuration.maxFramePayload else {
            logger.error("dropping a \(frame.type) frame of \(frame.payload.readableBytes) bytes above the frame limit")
            return
        }
        var buffer = context.channel.allocator.buffer(capacity: Wire.frameHeaderSize + frame.payload.readableBytes)
        FrameEncoder.write(frame, into: &buffer)
        let size = buffer.readableBytes
        pendingOutboundBytes += size
        let promise = context.eventLoop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolated().whenComplete { [self] _ in
            pendingOutboundBytes -= size
            if pendingOutboundBytes <= configuration.maxOutboundBuffer / 2, !writabilityWaiters.isEmpty {
                let waiters = writabilityWaiters
                writabilityWaiters.removeAll()
                for waiter in waiters { waiter.succeed() }
            }
        }
        context.writeAndFlush(wrapOutboundOut(buffer), promise: promise)
        if pendingOutboundBytes > configuration.maxOutboundBuffer {
            logger.notice("closing: \(pendingOutboundBytes) bytes buffered for a peer that is not reading")
            close()
        }
    }
}
