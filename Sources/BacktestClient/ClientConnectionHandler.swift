import BacktestCore
import BacktestProtocol
import NIOCore

/// The client side of one connection, confined to its event loop: sends the preface, waits for
/// SETTINGS, multiplexes calls on odd increasing stream ids and routes frames back to them.
///
/// Calls beyond the server's announced `max_concurrent_streams` wait here, in order, and go out
/// as earlier calls end, instead of being refused by the server with RESOURCE_EXHAUSTED: a
/// client that fires 500 calls at once on one connection gets 500 answers. Ids are assigned in
/// call order and queued calls leave in that order, so ids on the wire still increase.
///
/// Every call ends exactly once: with its RESPONSE, a local deadline, a cancel, a GOAWAY that
/// did not cover it, or the connection closing before the RESPONSE — the last one is reported as
/// UNAVAILABLE "connection closed before the call finished", never as a finished call.
///
/// While calls are in flight it PINGs the server every liveness interval; a server that sent
/// nothing for a whole interval after such a PING, while it took every byte written to it (so it
/// is not merely not reading this connection), is given up: the calls end UNAVAILABLE.
final class ClientConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = InboundFrame
    typealias OutboundOut = ByteBuffer

    /// Where a stream's frames go.
    struct Observer: Sendable {
        var onData: (@Sendable (ByteBuffer) -> Void)?
        var onEnd: @Sendable (Result<CallResponse, any Error>) -> Void
        var timer: Scheduled<Void>?
    }

    let settings: EventLoopPromise<ConnectionSettings>
    let decodeLimits: DecodeLimits
    private let usabilityChanged: @Sendable (Bool) -> Void
    private var context: ChannelHandlerContext?
    /// Calls started and not yet ended: sent ones and queued ones.
    private var streams: [UInt32: Observer] = [:]
    /// Calls waiting for a free stream, oldest first, with their encoded REQUEST frames.
    private var queued: [(id: UInt32, frame: Frame)] = []
    /// The server's limit, from its SETTINGS.
    private var maxSentStreams = Int.max
    private var sentStreams: Int { streams.count - queued.count }
    private var nextStreamID: UInt32 = 1
    private var pings: [UInt64: EventLoopPromise<Void>] = [:]
    private(set) var usable = true
    /// The liveness interval asked for (nil: the server's keepalive interval, once known).
    private var livenessInterval: TimeAmount?
    private var livenessTimer: Scheduled<Void>?
    /// When the last liveness PING was written, and when the server last sent anything.
    private var livenessPingAt: NIODeadline?
    private var lastHeard = NIODeadline.now()
    /// Frames written and not yet taken by the socket.
    private var unwrittenFrames = 0
    /// Why the connection was given up, for the calls it ends.
    private var gaveUp: BacktestError?
    /// The server's longest call (`max_timeout_ms` from its SETTINGS; nil: not said): a call
    /// with no deadline of its own ends on this side a little after it, as one with a deadline
    /// does (a server that answers PINGs but never the call held it for good).
    private var serverMaxTimeout: TimeAmount?

    init(settings: EventLoopPromise<ConnectionSettings>, decodeLimits: DecodeLimits, livenessInterval: TimeAmount? = nil,
         usabilityChanged: @escaping @Sendable (Bool) -> Void) {
        self.settings = settings
        self.decodeLimits = decodeLimits
        self.livenessInterval = livenessInterval
        self.usabilityChanged = usabilityChanged
    }

    /// A call the server's GOAWAY says it never processed: safe to retry on a new connection.
    struct CallNotProcessed: Error {
        let error: BacktestError
    }

    static let closedBeforeFinish = BacktestError(.unavailable, "connection closed before the call finished")

    // MARK: Channel events

    func channelActive(context: ChannelHandlerContext) {
        self.context = context
        var preface = context.channel.allocator.buffer(capacity: Wire.prefaceSize)
        Wire.writePreface(into: &preface)
        context.writeAndFlush(wrapOutboundOut(preface), promise: nil)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        markUnusable()
        settings.fail(gaveUp ?? BacktestError(.unavailable, "connection closed during the handshake"))
        let ended = streams
        streams.removeAll()
        queued.removeAll()
        livenessTimer?.cancel()
        livenessTimer = nil
        for (_, observer) in ended {
            observer.timer?.cancel()
            observer.onEnd(.failure(gaveUp ?? Self.closedBeforeFinish))
        }
        for (_, ping) in pings { ping.fail(Self.closedBeforeFinish) }
        pings.removeAll()
        self.context = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Bytes that are not this protocol (a 4 GB frame header, another service's answer) are
        // said as such, not as "connection closed" (the peer did not close: this side does).
        if gaveUp == nil, let framing = error as? FrameDecodingError {
            gaveUp = BacktestError(.unavailable, "the peer does not speak the backtest protocol: \(framing)", cause: error)
        }
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .frame(let frame) = unwrapInboundIn(data) else { return }
        lastHeard = .now()
        switch frame.type {
        case .settings:
            if let received = try? ConnectionSettings.decode(frame.payload, limits: decodeLimits) {
                maxSentStreams = received.maxConcurrentStreams == 0 ? Int.max : Int(received.maxConcurrentStreams)
                if received.maxTimeoutMs > 0 { serverMaxTimeout = .milliseconds(Int64(received.maxTimeoutMs)) }
                if livenessInterval == nil {
                    livenessInterval = .milliseconds(Int64(received.keepaliveIntervalMs == 0 ? 30_000 : received.keepaliveIntervalMs))
                }
                settings.succeed(received)
            } else {
                settings.fail(BacktestError(.internal, "the server sent malformed SETTINGS"))
                context.close(promise: nil)
            }
        case .data:
            streams[frame.streamID]?.onData?(frame.payload)
        case .response:
            guard let observer = streams.removeValue(forKey: frame.streamID) else { return }
            observer.timer?.cancel()
            do {
                observer.onEnd(.success(try CallResponse.decode(frame.payload, limits: decodeLimits)))
            } catch {
                observer.onEnd(.failure(BacktestError(.internal, "malformed response from the server: \(error)", cause: error)))
            }
            sendQueued()
            closeIfDone()
        case .cancel:
            end(frame.streamID, BacktestError(.cancelled, "the server cancelled the call"))
        case .ping where frame.flags.contains(.ack):
            if let opaque = try? PingMessage.decode(frame.payload, limits: decodeLimits).opaque {
                pings.removeValue(forKey: opaque)?.succeed()
            }
        case .ping:
            write(Frame(type: .ping, flags: .ack, streamID: 0, payload: frame.payload))
        case .goAway:
            receivedGoAway((try? GoAwayMessage.decode(frame.payload, limits: decodeLimits))
                ?? GoAwayMessage(lastStreamID: 0, status: CallStatus(code: .unavailable, message: "GOAWAY")))
        default:
            break
        }
    }

    private func receivedGoAway(_ goAway: GoAwayMessage) {
        markUnusable()
        let status = goAway.status.code == .ok
            ? BacktestError(.unavailable, "the server is shutting down (\(goAway.status.message)); retry on a new connection")
            : goAway.status.error ?? Self.closedBeforeFinish
        settings.fail(status)
        for id in streams.keys where id > goAway.lastStreamID {
            end(id, CallNotProcessed(error: BacktestError(.unavailable, "the server did not process the call: \(status.message)")))
        }
        closeIfDone()
    }

    // MARK: Calls (on the event loop)

    /// Opens a stream; the observer hears exactly one `onEnd`.
    /// Throws `CallNotProcessed` when the connection can take no new call (the caller retries
    /// on a new connection).
    func start(_ request: CallRequest, observer: Observer, localDeadline: TimeAmount?) throws(CallNotProcessed) -> UInt32 {
        guard usable, let context else {
            throw CallNotProcessed(error: BacktestError(.unavailable, "the connection is closing; retry on a new connection"))
        }
        let id = nextStreamID
        guard id <= Wire.maxStreamID - 2 else {
            markUnusable()
            throw CallNotProcessed(error: BacktestError(.unavailable, "stream ids exhausted on this connection"))
        }
        nextStreamID += 2
        var observer = observer
        if let localDeadline = localDeadline ?? serverMaxTimeout.map(Self.backstop) {
            observer.timer = context.eventLoop.assumeIsolated().scheduleTask(in: localDeadline) { [self] in
                cancel(id, reason: "deadline exceeded", error: BacktestError(.deadlineExceeded, "deadline exceeded (client side)"))
            }
        }
        streams[id] = observer
        armLiveness()
        let frame = Frame(type: .request, streamID: id, payload: request.encoded(allocator: context.channel.allocator))
        if queued.isEmpty, sentStreams <= maxSentStreams {
            write(frame)
        } else {
            queued.append((id, frame))
        }
        return id
    }

    /// Ends a stream from this side: CANCEL to the server, `error` to the observer.
    func cancel(_ id: UInt32, reason: String = "cancelled by the client",
                error: BacktestError = BacktestError(.cancelled, "call cancelled")) {
        guard streams[id] != nil else { return }
        if let index = queued.firstIndex(where: { $0.id == id }) {
            queued.remove(at: index)  // never sent: nothing to tell the server
        } else {
            write(Frame(type: .cancel, streamID: id, payload: CancelMessage(reason: reason).encoded()))
        }
        end(id, error)
    }

    func ping(_ promise: EventLoopPromise<Void>) {
        guard context != nil else { return promise.fail(Self.closedBeforeFinish) }
        let opaque = UInt64.random(in: .min ... .max)
        pings[opaque] = promise
        write(Frame(type: .ping, streamID: 0, payload: PingMessage(opaque: opaque).encoded()))
    }

    func close() {
        context?.close(promise: nil)
    }

    private func end(_ id: UInt32, _ error: any Error) {
        guard let observer = streams.removeValue(forKey: id) else { return }
        queued.removeAll { $0.id == id }
        observer.timer?.cancel()
        observer.onEnd(.failure(error))
        sendQueued()
        closeIfDone()
    }

    /// Sends queued calls while the server's stream limit allows.
    private func sendQueued() {
        while usable, !queued.isEmpty, sentStreams < maxSentStreams {
            write(queued.removeFirst().frame)
        }
    }

    private func markUnusable() {
        guard usable else { return }
        usable = false
        usabilityChanged(false)
    }

    /// After a GOAWAY the connection is only kept for the calls it still carries.
    private func closeIfDone() {
        if !usable, streams.isEmpty { context?.close(promise: nil) }
    }

    private func write(_ frame: Frame) {
        guard let context else { return }
        var buffer = context.channel.allocator.buffer(capacity: Wire.frameHeaderSize + frame.payload.readableBytes)
        FrameEncoder.write(frame, into: &buffer)
        unwrittenFrames += 1
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.assumeIsolated().whenComplete { [self] _ in unwrittenFrames -= 1 }
        context.writeAndFlush(wrapOutboundOut(buffer), promise: written)
    }

    /// When the client gives up a call whose server-side limit is `limit`: a little later (10 %,
    /// at least 50 ms), so that the server's own answer comes first.
    static func backstop(_ limit: TimeAmount) -> TimeAmount {
        limit + .nanoseconds(max(limit.nanoseconds / 10, 50_000_000))
    }

    // MARK: Liveness

    private func armLiveness() {
        guard livenessTimer == nil, let interval = livenessInterval, interval > .zero, let context else { return }
        livenessTimer = context.eventLoop.assumeIsolated().scheduleTask(in: interval) { [self] in
            livenessTimer = nil
            checkLiveness()
        }
    }

    /// Gives the server up when it sent nothing since the last liveness PING and took everything
    /// written to it; else PINGs it again (while calls are in flight).
    private func checkLiveness() {
        guard !streams.isEmpty, let context, let interval = livenessInterval else {
            livenessPingAt = nil
            return
        }
        if let sent = livenessPingAt, lastHeard < sent, unwrittenFrames == 0 {
            gaveUp = BacktestError(.unavailable,
                "the server sent nothing for \(interval.nanoseconds / 1_000_000) ms, not even the answer to a PING: it stopped answering; the call may or may not have run")
            context.close(promise: nil)
            return
        }
        livenessPingAt = .now()
        write(Frame(type: .ping, streamID: 0, payload: PingMessage(opaque: .random(in: .min ... .max)).encoded()))
        armLiveness()
    }
}
