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
/// Output backpressure is the machine's (PROTOCOL.md §5): streams' DATA frames and RESPONSEs wait
/// in per-stream queues and are handed to the channel in turn while the bytes it holds stay
/// within `maxOutboundBuffer`; control frames go at once, ahead of them. The handler tells the
/// machine when each write completes (a promise per frame) and, before a keepalive or idle check,
/// how much of a large frame the socket took in part (`ChannelOptions.bufferedWritableBytes`), so
/// a slow reader is told from one that stopped. A streaming call waits while its own frame is
/// still queued, or while the channel is unwritable: the write-buffer water marks are half of
/// `maxOutboundBuffer` (low = high).
///
/// Input is bounded server-wide (`InboundMemoryBudget`, PROTOCOL.md §5): once a frame's header
/// shows a payload over 16 KiB, the handler reserves the frame's size before it reads more, and
/// while the reservation waits it stops reading (it withholds the channel's `read`), telling the
/// machine, which suspends the frame timer and the keepalive check meanwhile. A REQUEST's
/// reservation goes with its payload to the call, which gives it back once it has decoded it.
///
/// Output is bounded server-wide too (`OutputMemoryBudget`, PROTOCOL.md §5): after its events
/// the handler reports the bytes its machine holds for the peer (`heldOutputBytes`), and when
/// all connections together hold more than the budget, connections are evicted (those holding
/// output longest first, then the largest).
///
/// Events that arrive while the handler is performing actions (a write completing at once, a
/// resumed writer writing again, the channel closing) are handled after them, in order, so the
/// machine's frames reach the channel in the order it emitted them.
final class ServerConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// How to stop a call's work.
    struct CallHandle {
        let cancel: () -> Void
    }

    /// Starts the work of one call (its REQUEST payload with its part of the inbound budget,
    /// received at the given loop time) and returns how to cancel it. The work reports back through `armDeadline`, `writeData` and
    /// `finish`, on the event loop. The default runs a `CallRunner` task.
    typealias CallStarter = (_ handler: ServerConnectionHandler, _ streamID: UInt32, _ payload: ReceivedPayload,
                             _ receivedAt: NIODeadline) -> CallHandle

    let configuration: ServerConfiguration
    var logger: Logger
    /// Shared with every call's context; marked before the calls are cancelled on close.
    let connectionState = ConnectionState()
    private(set) var stateMachine: ConnectionStateMachine
    private(set) var context: ChannelHandlerContext?
    private let decoder: ObservedFrameDecoder
    private let processor: NIOSingleStepByteToMessageProcessor<ObservedFrameDecoder>
    /// This connection's part of the server's inbound budget.
    let inbound: InboundMemoryBudget.Account
    /// The server's output budget, and this connection's holding in it (from `handlerAdded`
    /// until the connection ends) as last reported.
    private let outputMemory: OutputMemoryBudget
    private var output: OutputMemoryBudget.Account?
    private var reportedHeldOutput = 0
    /// The reservation of the frame being received (taken by the frame once whole).
    private var frameHold: InboundMemoryBudget.Hold?
    /// The reservations of REQUEST payloads whose call has not started (it may wait for a turn
    /// to run, `ServerConfiguration.maxRunningCalls`), by stream; the call takes its own.
    private var payloadHolds: [UInt32: InboundMemoryBudget.Hold] = [:]
    /// A wait for room in the inbound budget: the budget's id and ours (grants for an older wait
    /// are given back). Reading is paused while one is pending.
    private var budgetWait: (id: UInt64, token: UInt64)?
    private var lastWaitToken: UInt64 = 0
    /// Whether reading is paused (the channel's `read` is withheld), and whether one was asked for meanwhile.
    private(set) var isReadingPaused = false
    private var readRequested = false
    private let startCall: CallStarter
    private var timers: [ConnectionStateMachine.Timer: Scheduled<Void>] = [:]
    private var calls: [UInt32: CallHandle] = [:]
    /// Streaming calls waiting for room, by stream.
    private var dataWriters: [UInt32: [EventLoopPromise<Void>]] = [:]
    /// Set once the channel's close was requested: nothing more is written.
    private var closeIssued = false
    /// Events that arrived while actions were being performed, handled next.
    private var backlog: [ConnectionStateMachine.Event] = []
    private var isPerforming = false
    /// A writer was told to wait only because its frame went into the backlog (see `writeData`).
    private var writerWaitsForTheBacklog = false
    /// Bytes handed to the channel and bytes whose write completed, since the connection began.
    private var handedOverBytes = 0
    private var completedBytes = 0

    /// `requestMemory`, `inboundMemory` and `outputMemory` are the server's, shared by its
    /// connections; by default ones of this connection's own, sized from `configuration` (tests).
    convenience init(configuration: ServerConfiguration, service: any BacktestService, requestMemory: RequestMemoryBudget? = nil,
                     inboundMemory: InboundMemoryBudget? = nil, outputMemory: OutputMemoryBudget? = nil, logger: Logger) {
        self.init(configuration: configuration, logger: logger, inboundMemory: inboundMemory, outputMemory: outputMemory,
                  startCall: Self.callRunner(service, requestMemory: requestMemory ?? RequestMemoryBudget(bytes: configuration.requestMemoryBudget)))
    }

    init(configuration: ServerConfiguration, logger: Logger, pingOpaque: UInt64 = .random(in: .min ... .max),
         inboundMemory: InboundMemoryBudget? = nil, outputMemory: OutputMemoryBudget? = nil, startCall: @escaping CallStarter) {
        self.configuration = configuration
        self.logger = logger
        self.startCall = startCall
        self.stateMachine = ConnectionStateMachine(configuration: configuration, pingOpaque: pingOpaque)
        decoder = ObservedFrameDecoder(FrameDecoder(maxPayload: configuration.maxFramePayload, expectPreface: true))
        processor = NIOSingleStepByteToMessageProcessor(decoder)
        inbound = (inboundMemory ?? InboundMemoryBudget(configuration)).account()
        self.outputMemory = outputMemory ?? OutputMemoryBudget(configuration)
    }

    /// Runs each call as a `CallRunner` task against `service`.
    static func callRunner(_ service: any BacktestService, requestMemory: RequestMemoryBudget) -> CallStarter {
        { handler, id, payload, receivedAt in
            let runner = CallRunner(streamID: id, receivedAt: receivedAt, configuration: handler.configuration,
                                    service: service, logger: handler.logger,
                                    connection: NIOLoopBound(handler, eventLoop: handler.eventLoop),
                                    connectionState: handler.connectionState, requestMemory: requestMemory)
            let task = Task { await runner.run(payload) }  // the box, not the bytes: they go once decoded
            return CallHandle(cancel: { task.cancel() })
        }
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        boundEventLoop = context.eventLoop
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        output = outputMemory.account { eviction in
            handler.eventLoop.execute {
                // Lost to its calls, as on a disconnect: a batch keeps running for re-attach.
                handler.value.connectionState.markLost()
                handler.value.handle(.evicted(eviction))
            }
        }
        let half = max(1, configuration.maxOutboundBuffer / 2)
        do {
            try context.channel.syncOptions?.setOption(.writeBufferWaterMark, value: .init(low: half, high: half))
        } catch {
            logger.debug("could not set the write-buffer water marks: \(error)")
        }
        handle(.started)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !stateMachine.isEnding else { return }
        do {
            try processor.process(buffer: unwrapInboundIn(data)) { inbound in
                guard !stateMachine.isEnding else { return }
                switch inbound {
                case .preface:
                    handle(.prefaceReceived)
                case .frame(let frame):
                    let hold = hold(for: frame)
                    if frame.type == .request, let hold { payloadHolds[frame.streamID] = hold }
                    handle(.frameReceived(frame))
                    // Other frames are handled by now: their bytes are not held any more (a
                    // REQUEST's stay with its payload, in `payloadHolds` or its started call).
                    if frame.type != .request { hold?.release() }
                    if !stateMachine.streams.keys.contains(frame.streamID) { payloadHolds[frame.streamID] = nil }
                }
            }
        } catch let error as FrameDecodingError {
            handle(.framingFailed(error))
        } catch {
            handle(.internalError)
            logger.error("unexpected error while reading frames: \(LogText("\(error)", limit: LogText.messageLimit))")
        }
        handle(.readProcessed(partialFrameBuffered: processor.unprocessedBytes > 0))
        regulateReading()
    }

    /// Withheld while reading is paused for the inbound budget (see the type's documentation).
    func read(context: ChannelHandlerContext) {
        guard !isReadingPaused else {
            readRequested = true
            return
        }
        context.read()
    }

    // MARK: Inbound budget

    /// The reservation a whole frame holds while it is handled: the one made while it arrived,
    /// or, for one over `InboundMemoryBudget.smallFrameBytes` that arrived within one read, its
    /// size counted now. A wait for room ends with the frame (the next one is looked at anew).
    private func hold(for frame: Frame) -> InboundMemoryBudget.Hold? {
        withdrawBudgetWait()
        if let hold = frameHold {
            setFrameHold(nil)
            return hold
        }
        guard frame.payload.readableBytes > InboundMemoryBudget.smallFrameBytes else { return nil }
        return inbound.count(Wire.frameHeaderSize + frame.payload.readableBytes)
    }

    /// After a read: reserves the size of the frame being received (once its header is in and
    /// its payload is over 16 KiB), or waits until this connection is within its limits again
    /// (`InboundMemoryBudget.Account.mustWait`); reading is paused while either waits, and
    /// resumed otherwise.
    private func regulateReading() {
        guard budgetWait == nil, context != nil, !stateMachine.isEnding else { return }
        let amount: Int
        if frameHold == nil, let length = decoder.frames.awaitedPayloadLength, length > InboundMemoryBudget.smallFrameBytes {
            amount = Wire.frameHeaderSize + length
        } else if inbound.mustWait {
            amount = 0
        } else {
            return resumeReading()
        }
        lastWaitToken += 1
        let token = lastWaitToken
        let handler = NIOLoopBound(self, eventLoop: eventLoop)
        switch inbound.reserve(amount, granted: { hold in
            handler.eventLoop.execute { handler.value.budgetGranted(hold, token: token) }
        }) {
        case .granted(let hold):
            if hold.amount > 0 { setFrameHold(hold) }
            resumeReading()
        case .waiting(let id):
            budgetWait = (id, token)
            pauseReading()
        }
    }

    private func budgetGranted(_ hold: InboundMemoryBudget.Hold, token: UInt64) {
        guard let wait = budgetWait, wait.token == token, context != nil, !stateMachine.isEnding else {
            // For a wait that ended meanwhile (its frame arrived whole, the connection closed).
            return hold.release()
        }
        budgetWait = nil
        if hold.amount > 0 { setFrameHold(hold) }
        regulateReading()
    }

    /// Takes or lets go of the room held for the frame being received, and tells the machine
    /// (its stall timer runs while the room is held).
    private func setFrameHold(_ hold: InboundMemoryBudget.Hold?) {
        let changed = (frameHold == nil) != (hold == nil)
        frameHold = hold
        if changed { handle(.inboundRoomHeld(hold != nil)) }
    }

    private func pauseReading() {
        guard !isReadingPaused else { return }
        isReadingPaused = true
        handle(.readingPaused)
    }

    private func resumeReading() {
        guard isReadingPaused else { return }
        isReadingPaused = false
        handle(.readingResumed(partialFrameBuffered: processor.unprocessedBytes > 0))
        if readRequested, let context {
            readRequested = false
            context.read()
        }
    }

    /// Withdraws a pending wait for room in the inbound budget (a grant already on its way is
    /// given back by `budgetGranted`).
    private func withdrawBudgetWait() {
        guard let wait = budgetWait else { return }
        budgetWait = nil
        inbound.cancelWait(wait.id)
    }

    /// Gives back what the connection holds for frames not yet whole, and withdraws its wait.
    private func releaseInbound() {
        withdrawBudgetWait()
        frameHold?.release()
        frameHold = nil
        payloadHolds.removeAll()
    }

    // MARK: Output budget

    /// Tells the output budget what the connection holds now, when that changed.
    private func reportHeldOutput() {
        let held = stateMachine.heldOutputBytes
        guard held != reportedHeldOutput, let output else { return }
        reportedHeldOutput = held
        output.update(held: held)
    }

    /// The connection is gone: its holding stops counting (the account's eviction closure holds
    /// this handler, so it must go).
    private func closeOutputAccount() {
        output?.close()
        output = nil
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        handle(.writabilityChanged(isWritable: context.channel.isWritable))
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        connectionState.markLost()
        handle(.channelInactive)
        releaseConnectionResources()
        context.fireChannelInactive()
    }

    /// Cancels the timers and gives back the connection's parts of the inbound and output
    /// budgets. A scheduled timer holds this handler (and its inbound buffer, up to a frame's
    /// size): left pending, the idle timer would keep a closed connection in memory for its whole
    /// timeout (5 minutes by default); the output account's eviction closure holds it too.
    private func releaseConnectionResources() {
        for timer in timers.values { timer.cancel() }
        timers.removeAll()
        releaseInbound()
        closeOutputAccount()
    }

    /// Lets go of the context: the context holds this handler, so keeping it would make a cycle
    /// that outlives the connection, with the handler's inbound buffer (up to a frame's size).
    /// Every closed connection stayed in memory that way: under `loadtest --hostile 5`, hundreds
    /// of them with 2-4 MB buffers (issue 12: peak RSS). Events after this are ignored (`handle`).
    func handlerRemoved(context: ChannelHandlerContext) {
        releaseConnectionResources()
        self.context = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error: \(LogText("\(error)", limit: LogText.messageLimit))")
        handle(.closeRequested)
    }

    // MARK: Streams (called by the call's work on the event loop)

    /// The connection's event loop (kept after the handler is removed: calls that outlive the
    /// connection still complete their futures on it).
    var eventLoop: any EventLoop { boundEventLoop! }
    private var boundEventLoop: (any EventLoop)?

    /// Starts the deadline once the request is decoded (the timeout is in the request).
    func armDeadline(_ id: UInt32, at deadline: NIODeadline, requestID: String, timeout: TimeAmount) {
        handle(.deadlineKnown(streamID: id, deadline: deadline, requestID: requestID, timeout: timeout))
    }

    /// Writes a DATA frame: it joins the stream's output queue. The future completes once the
    /// stream may write its next one (`ConnectionStateMachine.dataWriterMustWait(on:)`), and fails
    /// if the stream or the connection has ended.
    func writeData(_ id: UInt32, _ payload: ByteBuffer) -> EventLoopFuture<Void> {
        guard stateMachine.canSendData(on: id) else { return eventLoop.makeFailedFuture(CancellationError()) }
        handle(.dataReady(streamID: id, payload: payload))
        // Written while actions are performed (a writer resumed there writing again), the frame
        // is queued after them: the writer waits, and is resumed once they are done if it may go.
        guard isPerforming || stateMachine.dataWriterMustWait(on: id) else { return eventLoop.makeSucceededVoidFuture() }
        if isPerforming { writerWaitsForTheBacklog = true }
        let waiter = eventLoop.makePromise(of: Void.self)
        dataWriters[id, default: []].append(waiter)
        return waiter.futureResult
    }

    /// Fails the writers of stream `id` that wait for room with `CancellationError` (its call
    /// was cancelled: CANCEL, deadline, or the call's task itself).
    func failDataWriters(of id: UInt32) {
        for waiter in dataWriters.removeValue(forKey: id) ?? [] { waiter.fail(CancellationError()) }
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
        backlog.append(event)
        guard !isPerforming else { return }
        isPerforming = true
        defer { isPerforming = false }
        var next = 0
        while next < backlog.count {
            let event = backlog[next]
            next += 1
            perform(stateMachine.handle(event, now: context.eventLoop.now), context)
        }
        backlog.removeAll(keepingCapacity: true)
        isPerforming = false
        reportHeldOutput()
        if writerWaitsForTheBacklog {
            writerWaitsForTheBacklog = false
            resumeDataWriters()
        }
    }

    /// Resumes the waiting writers whose stream may write now.
    private func resumeDataWriters() {
        for id in dataWriters.keys.sorted() where !stateMachine.dataWriterMustWait(on: id) {
            for waiter in dataWriters.removeValue(forKey: id) ?? [] { waiter.succeed() }
        }
    }

    /// Before a check of the peer's liveness: how many bytes it took, counting the part of a
    /// frame the socket took so far (the channel's count, when it holds the bytes itself).
    private func reportOutputTaken(_ context: ChannelHandlerContext) {
        reportOutputAcknowledged(context)
        guard handedOverBytes > completedBytes,
              let buffered = try? context.channel.syncOptions?.getOption(.bufferedWritableBytes), buffered > 0
        else { return }
        handle(.outputTaken(totalBytes: max(completedBytes, handedOverBytes - buffered)))
    }

    /// The bytes the peer's TCP acknowledged (`ConnectionStateMachine.Event.outputAcknowledged`),
    /// from getsockopt(TCP_INFO) on Linux: the kernel's `tcpi_bytes_acked` (since Linux 4.1),
    /// which glibc's `struct tcp_info` does not declare, at byte 120 of the kernel's struct.
    /// Elsewhere, or when the socket does not say, nothing is reported.
    private func reportOutputAcknowledged(_ context: ChannelHandlerContext) {
        #if os(Linux)
        guard handedOverBytes > 0, let provider = context.channel as? SocketOptionProvider else { return }
        let info: EventLoopFuture<LinuxTCPInfo> = provider.unsafeGetSocketOption(level: .tcp, name: .tcp_info)
        // On the event loop the option is read at once and the future is complete: this runs now.
        info.assumeIsolated().whenSuccess { [self] info in
            if info.bytesAcknowledged > 0 { handle(.outputAcknowledged(totalBytes: Int(clamping: info.bytesAcknowledged))) }
        }
        #endif
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
                    if timer == .keepalive || timer == .idle { reportOutputTaken(context) }
                    if timer == .stall { handle(.inboundWaiters(present: inbound.budget.usage.waiting > 0)) }
                    handle(.timerFired(timer))
                }
            case .cancelTimer(let timer):
                timers.removeValue(forKey: timer)?.cancel()
            case .startCall(let id, let payload, let receivedAt):
                calls[id] = startCall(self, id, ReceivedPayload(payload, hold: payloadHolds.removeValue(forKey: id)), receivedAt)
            case .cancelCall(let id):
                calls.removeValue(forKey: id)?.cancel()
                payloadHolds[id] = nil  // a call that never started
                // A writer waiting for room (the client is not reading) must not outlive its
                // call: it fails at once, so the call's work sees the cancellation.
                failDataWriters(of: id)
            case .releaseCall(let id):
                calls[id] = nil
            case .resumeDataWriters:
                resumeDataWriters()
            case .failDataWriters:
                let waiters = dataWriters.keys.sorted().flatMap { dataWriters[$0] ?? [] }
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
        let size = Wire.frameHeaderSize + frame.payload.readableBytes
        guard !closeIssued else { return }
        guard frame.payload.readableBytes <= configuration.maxFramePayload else {
            // The machine replaces oversized RESPONSEs and calls refuse oversized DATA: a bug.
            logger.error("dropping a \(frame.type) frame of \(frame.payload.readableBytes) bytes above the frame limit")
            handle(.outputWritten(bytes: size))
            return
        }
        var buffer = context.channel.allocator.buffer(capacity: size)
        FrameEncoder.write(frame, into: &buffer)
        handedOverBytes += size
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.assumeIsolated().whenComplete { [self] _ in
            completedBytes += size
            handle(.outputWritten(bytes: size))
        }
        context.writeAndFlush(wrapOutboundOut(buffer), promise: written)
    }
}

/// `FrameDecoder` as a class, so that the handler sees the frame being received
/// (`awaitedPayloadLength`): `NIOSingleStepByteToMessageProcessor` keeps its decoder to itself.
final class ObservedFrameDecoder: NIOSingleStepByteToMessageDecoder {
    typealias InboundOut = InboundFrame
    private(set) var frames: FrameDecoder

    init(_ frames: FrameDecoder) { self.frames = frames }

    func decode(buffer: inout ByteBuffer) throws -> InboundFrame? { try frames.decode(buffer: &buffer) }

    func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> InboundFrame? {
        try frames.decodeLast(buffer: &buffer, seenEOF: seenEOF)
    }
}

extension InboundMemoryBudget {
    /// The budget `configuration` asks for (`inboundMemoryBudget`), with room for its largest frame per connection.
    convenience init(_ configuration: ServerConfiguration) {
        self.init(bytes: configuration.inboundMemoryBudget, largestFrame: Wire.frameHeaderSize + configuration.maxFramePayload)
    }
}

#if os(Linux)
/// The first 136 bytes of Linux's `struct tcp_info` (linux/tcp.h), read as 17 words: word 15
/// (bytes 120-127) is `tcpi_bytes_acked`. An older kernel fills less and leaves it 0.
struct LinuxTCPInfo: Sendable {
    var words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

    var bytesAcknowledged: UInt64 { words.15 }
}
#endif
