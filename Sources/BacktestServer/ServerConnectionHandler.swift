import BacktestCore
import BacktestProtocol
import BacktestService
import Logging
import NIOCore

/// One connection on its event loop: a thin shell around `ConnectionStateMachine`.
///
/// It decodes bytes into the preface and frames, feeds the machine every channel event with the
/// loop's time (`EventLoop.now`), and performs the actions it returns: writes, timers, starting
/// and cancelling calls, closing. Every decision (limits, timeouts, GOAWAY, keepalive, drain)
/// is the machine's, so tests drive a handler on an `EmbeddedChannel` with a manual clock, and
/// the machine alone as a value.
///
/// Calls run as tasks (see `CallRunner`, or the `CallStarter` given to `init`); the handler owns
/// their lifetime: it cancels them on CANCEL, deadline, disconnect and forced shutdown, and writes
/// each stream's one RESPONSE. Whichever of "call finished", "deadline", "cancel" happens first
/// ends the stream; the others find it gone and do nothing.
///
/// Output backpressure uses the channel's writability: the handler sets the write-buffer water
/// marks to half of `maxOutboundBuffer` (low = high), so the channel turns unwritable once more
/// than half of the bound is buffered and writable again once it drops below half; a streaming
/// call whose DATA frame left the channel unwritable waits for `channelWritabilityChanged`. The
/// hard bound (more than `maxOutboundBuffer` buffered: the peer is not reading, close) reads the
/// channel's own count (`ChannelOptions.bufferedWritableBytes`) after each write made while the
/// channel is unwritable; nothing is counted by hand. This keeps PROTOCOL.md §5 ("a streaming
/// call waits while more than half is queued; beyond the whole, the peer is not reading and the
/// connection is closed"); the only difference from counting is that waiters resume when the
/// buffer is strictly below half rather than at exactly half.
final class ServerConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// How to stop a call's work.
    struct CallHandle {
        let cancel: () -> Void
    }

    /// Starts the work of one call (its REQUEST payload, received at the given loop time) and
    /// returns how to cancel it. The work reports back through `armDeadline`, `writeData` and
    /// `finish`, on the event loop. The default runs a `CallRunner` task.
    typealias CallStarter = (_ handler: ServerConnectionHandler, _ streamID: UInt32, _ payload: ByteBuffer,
                             _ receivedAt: NIODeadline) -> CallHandle

    let configuration: ServerConfiguration
    var logger: Logger
    /// Shared with every call's context; marked before the calls are cancelled on close.
    let connectionState = ConnectionState()
    private(set) var stateMachine: ConnectionStateMachine
    private(set) var context: ChannelHandlerContext?
    private let processor: NIOSingleStepByteToMessageProcessor<FrameDecoder>
    private let startCall: CallStarter
    private var timers: [ConnectionStateMachine.Timer: Scheduled<Void>] = [:]
    private var calls: [UInt32: CallHandle] = [:]
    /// Streaming calls waiting for the channel to become writable.
    private var dataWriters: [EventLoopPromise<Void>] = []
    /// Set once the channel's close was requested: nothing more is written.
    private var closeIssued = false

    convenience init(configuration: ServerConfiguration, service: any BacktestService, logger: Logger) {
        self.init(configuration: configuration, logger: logger, startCall: Self.callRunner(service))
    }

    init(configuration: ServerConfiguration, logger: Logger, pingOpaque: UInt64 = .random(in: .min ... .max),
         startCall: @escaping CallStarter) {
        self.configuration = configuration
        self.logger = logger
        self.startCall = startCall
        self.stateMachine = ConnectionStateMachine(configuration: configuration, pingOpaque: pingOpaque)
        self.processor = NIOSingleStepByteToMessageProcessor(
            FrameDecoder(maxPayload: configuration.maxFramePayload, expectPreface: true))
    }

    /// Runs each call as a `CallRunner` task against `service`.
    static func callRunner(_ service: any BacktestService) -> CallStarter {
        { handler, id, payload, receivedAt in
            let runner = CallRunner(streamID: id, receivedAt: receivedAt, configuration: handler.configuration,
                                    service: service, logger: handler.logger,
                                    connection: NIOLoopBound(handler, eventLoop: handler.eventLoop),
                                    connectionState: handler.connectionState)
            let task = Task { await runner.run(payload) }
            return CallHandle(cancel: { task.cancel() })
        }
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let half = max(1, configuration.maxOutboundBuffer / 2)
        do {
            try context.channel.syncOptions?.setOption(.writeBufferWaterMark, value: .init(low: half, high: half))
        } catch {
            logger.debug("could not set the write-buffer water marks: \(error)")
        }
        handle(.started)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !stateMachine.isClosed else { return }
        do {
            try processor.process(buffer: unwrapInboundIn(data)) { inbound in
                guard !stateMachine.isClosed else { return }
                switch inbound {
                case .preface: handle(.prefaceReceived)
                case .frame(let frame): handle(.frameReceived(frame))
                }
            }
        } catch let error as FrameDecodingError {
            handle(.framingFailed(error))
        } catch {
            handle(.internalError)
            logger.error("unexpected error while reading frames: \(LogText("\(error)", limit: LogText.messageLimit))")
        }
        handle(.readProcessed(partialFrameBuffered: processor.unprocessedBytes > 0))
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        handle(.writabilityChanged(isWritable: context.channel.isWritable))
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        connectionState.markLost()
        handle(.channelInactive)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error: \(LogText("\(error)", limit: LogText.messageLimit))")
        handle(.closeRequested)
    }

    // MARK: Streams (called by the call's work on the event loop)

    var eventLoop: any EventLoop { context!.eventLoop }

    /// Starts the deadline once the request is decoded (the timeout is in the request).
    func armDeadline(_ id: UInt32, at deadline: NIODeadline, requestID: String, timeout: TimeAmount) {
        handle(.deadlineKnown(streamID: id, deadline: deadline, requestID: requestID, timeout: timeout))
    }

    /// Writes a DATA frame; the future completes once the output has room again, and fails if the
    /// stream or the connection has ended.
    func writeData(_ id: UInt32, _ payload: ByteBuffer) -> EventLoopFuture<Void> {
        guard stateMachine.canSendData(on: id) else { return eventLoop.makeFailedFuture(CancellationError()) }
        handle(.dataReady(streamID: id, payload: payload))
        guard stateMachine.dataWritersMustWait else { return eventLoop.makeSucceededVoidFuture() }
        let waiter = eventLoop.makePromise(of: Void.self)
        dataWriters.append(waiter)
        return waiter.futureResult
    }

    /// Ends a stream with its RESPONSE, unless something else ended it first.
    func finish(_ id: UInt32, _ payload: ByteBuffer) {
        handle(.callFinished(streamID: id, response: payload))
    }

    // MARK: Shutdown (called by the server on the event loop)

    /// Graceful shutdown: GOAWAY with the last accepted stream; in-flight calls finish (for up to
    /// the drain timeout), later REQUESTs get UNAVAILABLE; the connection closes after the last call.
    func beginDrain() { handle(.shutdownRequested) }

    /// Closes now; in-flight calls are cancelled.
    func close() { handle(.closeRequested) }

    // MARK: Performing the machine's actions

    private func handle(_ event: ConnectionStateMachine.Event) {
        guard let context else { return }
        perform(stateMachine.handle(event, now: context.eventLoop.now), context)
    }

    private func perform(_ actions: [ConnectionStateMachine.Action], _ context: ChannelHandlerContext) {
        for action in actions {
            switch action {
            case .write(let frame):
                write(frame, context)
            case .schedule(let timer, let deadline):
                timers.removeValue(forKey: timer)?.cancel()
                timers[timer] = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
                    timers[timer] = nil
                    handle(.timerFired(timer))
                }
            case .cancelTimer(let timer):
                timers.removeValue(forKey: timer)?.cancel()
            case .startCall(let id, let payload, let receivedAt):
                calls[id] = startCall(self, id, payload, receivedAt)
            case .cancelCall(let id):
                calls.removeValue(forKey: id)?.cancel()
            case .releaseCall(let id):
                calls[id] = nil
            case .resumeDataWriters:
                let waiters = dataWriters
                dataWriters.removeAll()
                for waiter in waiters { waiter.succeed() }
            case .failDataWriters:
                let waiters = dataWriters
                dataWriters.removeAll()
                for waiter in waiters { waiter.fail(CancellationError()) }
            case .close:
                guard !closeIssued else { break }
                closeIssued = true
                connectionState.markLost()
                context.close(promise: nil)
            case .log(let level, let message):
                // The state machine's messages may quote the peer (its first bytes): escaped, bounded.
                logger.log(level: level, "\(LogText(message, limit: LogText.messageLimit))")
            }
        }
    }

    private func write(_ frame: Frame, _ context: ChannelHandlerContext) {
        guard !closeIssued else { return }
        guard frame.payload.readableBytes <= configuration.maxFramePayload else {
            logger.error("dropping a \(frame.type) frame of \(frame.payload.readableBytes) bytes above the frame limit")
            return
        }
        var buffer = context.channel.allocator.buffer(capacity: Wire.frameHeaderSize + frame.payload.readableBytes)
        FrameEncoder.write(frame, into: &buffer)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        // Above the high water mark: ask the channel how much it holds (the hard bound).
        if !context.channel.isWritable,
           let buffered = try? context.channel.syncOptions?.getOption(.bufferedWritableBytes) {
            handle(.outboundBuffered(bytes: buffered))
        }
    }
}
