import BacktestCore
import BacktestProtocol
import Logging
import NIOCore

/// One connection's protocol logic as a value: events in, actions out.
///
/// It holds everything that decides what a connection does — its phase (preface, open, draining,
/// closed), the open streams, the last stream id, the timers it has armed, keepalive and
/// idleness bookkeeping, the frame-assembly clock, and the output: the channel's writability, the
/// bytes it holds for the peer, each stream's queue of frames waiting for room and whose turn is
/// next (PROTOCOL.md §2, "Output order and backpressure") — and nothing that does I/O. `ServerConnectionHandler` feeds it the channel's events with the event loop's time
/// (`EventLoop.now`, so an `EmbeddedEventLoop` drives it with a manual clock) and performs the
/// actions it returns, in order. The same split as grpc-swift-nio-transport's
/// `ServerConnectionManagementHandler` and its `StateMachine`.
///
/// Timers are named (`Timer`); the machine remembers which it armed, and a `timerFired` for one it
/// no longer holds is ignored, so a late or cancelled timer can never act on a newer state.
struct ConnectionStateMachine {
    /// `closing`: the connection's calls are cancelled and its queued output dropped; its last
    /// GOAWAY waits behind what the channel already holds, and the connection closes once that
    /// is written, or after `lingerTimeout` (an evicted connection, `Event.evicted`).
    enum Phase: Equatable { case awaitingPreface, open, draining, closing, closed }

    /// How long a connection in `closing` waits for its GOAWAY to be written before it closes.
    static let lingerTimeout = TimeAmount.seconds(1)

    /// The connection's timers. At most one of each is armed; scheduling one again replaces it.
    enum Timer: Hashable, CustomStringConvertible {
        /// The preface must arrive within `handshakeTimeout` of the handler being added.
        case handshake
        /// The frame being received must be complete within `frameTimeout` of its first byte.
        case frame
        /// No call in flight and no REQUEST for the idle period: GOAWAY OK, close.
        case idle
        /// While calls are in flight: PING every `keepaliveInterval`.
        case keepalive
        /// After a graceful GOAWAY: calls still running after `drainTimeout` are cancelled by closing.
        case drain
        /// The call's deadline.
        case deadline(streamID: UInt32)
        /// While the connection holds inbound room for the frame it is receiving: no byte of it
        /// for `inboundStallTimeout` while other connections wait for room closes it.
        case stall
        /// In `closing`: the GOAWAY was not written in time; close.
        case linger
        /// While reading is paused: write a probe (`probeInterval`).
        case probe

        var description: String {
            switch self {
            case .handshake: "handshake"
            case .frame: "frame"
            case .idle: "idle"
            case .keepalive: "keepalive"
            case .drain: "drain"
            case .deadline(let id): "deadline(\(id))"
            case .stall: "stall"
            case .linger: "linger"
            case .probe: "probe"
            }
        }
    }

    /// What happened on the connection.
    enum Event {
        /// The handler joined the pipeline: the handshake clock starts.
        case started
        /// The client's preface (magic and a supported version) arrived whole.
        case prefaceReceived
        /// A whole frame arrived.
        case frameReceived(Frame)
        /// The byte stream is not our framing (bad preface, unsupported version, oversized frame).
        case framingFailed(FrameDecodingError)
        /// Every frame of one read was handed over; `partialFrameBuffered` says whether bytes of
        /// an incomplete frame (or preface) remain buffered.
        case readProcessed(partialFrameBuffered: Bool)
        /// The handler stopped reading from the socket: the server's inbound budget has no room
        /// for this connection's next frame now (`InboundMemoryBudget`). The client is not at
        /// fault: the frame timer stops, and an unanswered keepalive PING (its answer may wait
        /// behind the unread bytes) does not close the connection, nor does idleness, while the
        /// server holds no output for it (one that reads none of its answers is still closed).
        case readingPaused
        /// Reading resumed; `partialFrameBuffered` as for `readProcessed` (the frame timer restarts).
        case readingResumed(partialFrameBuffered: Bool)
        /// The connection now holds (or no longer holds) room in the server's inbound budget for
        /// the frame it is receiving: from now on its bytes must keep coming while others wait
        /// for room (the stall timer).
        case inboundRoomHeld(Bool)
        /// Whether other connections wait for inbound room, sampled before the stall timer fires.
        case inboundWaiters(present: Bool)
        /// A timer this machine scheduled fired.
        case timerFired(Timer)
        /// A call's request was decoded: its deadline (absolute, from the REQUEST's arrival) is known.
        case deadlineKnown(streamID: UInt32, deadline: NIODeadline, requestID: String, timeout: TimeAmount)
        /// A call produced its RESPONSE payload. One above the frame limit is replaced by a short
        /// RESOURCE_EXHAUSTED answer, so every call still ends with exactly one RESPONSE.
        case callFinished(streamID: UInt32, response: ByteBuffer)
        /// A streaming call has a DATA payload to send (see `canSendData(on:)`): it joins the
        /// stream's output queue and goes out when the output bound has room, in turn with the
        /// other streams' (see `dataWriterMustWait(on:)`).
        case dataReady(streamID: UInt32, payload: ByteBuffer)
        /// The channel finished writing frames of this many bytes (the peer's socket took them);
        /// reported as each write completes, successfully or not.
        case outputWritten(bytes: Int)
        /// The peer has taken this many bytes of output in all, counting frames the socket took
        /// only in part (the channel's own count of buffered bytes, sampled before a check of the
        /// peer's liveness). Only increases count.
        case outputTaken(totalBytes: Int)
        /// The peer's TCP has acknowledged this many bytes of output in all (Linux's
        /// `tcpi_bytes_acked`, sampled before a check of the peer's liveness). A slow reader's
        /// progress shows here while the kernel still holds megabytes the channel handed it
        /// (a socket reports writable again only once a third of its buffer is free: minutes at
        /// 8 KB/s), so a reader taking output that slowly is not closed as not reading.
        case outputAcknowledged(totalBytes: Int)
        /// The channel's writability changed (its write-buffer water marks were crossed).
        case writabilityChanged(isWritable: Bool)
        /// This many bytes were seen buffered in the channel: beyond `maxOutboundBuffer` the peer
        /// is not reading and the connection is closed (a safety net: the machine's own output
        /// scheduling keeps DATA and RESPONSE frames within the bound).
        case outboundBuffered(bytes: Int)
        /// The server's output budget is exhausted and this connection was chosen to give way
        /// (`OutputMemoryBudget`): GOAWAY RESOURCE_EXHAUSTED, close.
        case evicted(OutputMemoryBudget.Eviction)
        /// Graceful shutdown: GOAWAY, let calls finish, then close.
        case shutdownRequested
        /// Close now (forced shutdown, a channel error); calls are cancelled when the channel goes inactive.
        case closeRequested
        /// A fatal error outside the framing (a bug): GOAWAY INTERNAL, close.
        case internalError
        /// The channel closed, whoever closed it.
        case channelInactive
    }

    /// What the handler must do, in order.
    enum Action: Equatable {
        /// Write and flush one frame.
        case write(Frame)
        /// Arm `timer` to fire at `deadline` (event loop time), replacing an armed one.
        case schedule(Timer, at: NIODeadline)
        case cancelTimer(Timer)
        /// Start the call's work for a REQUEST that arrived at `receivedAt`.
        case startCall(streamID: UInt32, payload: ByteBuffer, receivedAt: NIODeadline)
        /// Cancel the call's work (CANCEL, deadline, connection gone); nothing more is written for it.
        case cancelCall(streamID: UInt32)
        /// The call finished by itself: forget its work without cancelling it.
        case releaseCall(streamID: UInt32)
        /// The output has room again: resume the streaming calls that wait for it and may write
        /// now (`dataWriterMustWait(on:)` is false for their stream).
        case resumeDataWriters
        /// The connection is gone: fail the streaming calls that wait for room.
        case failDataWriters
        /// Mark the connection lost for its calls, then close the channel.
        case close
        case log(Logger.Level, String)
    }

    /// A call in flight.
    struct Stream: Equatable {
        /// From the REQUEST's header, once decoded; echoed in a DEADLINE_EXCEEDED response.
        var requestID = ""
        /// The call's timeout once its deadline is armed (for the DEADLINE_EXCEEDED message).
        var timeout: TimeAmount?
    }

    let configuration: ServerConfiguration
    private(set) var phase = Phase.awaitingPreface
    private(set) var streams: [UInt32: Stream] = [:]
    private(set) var lastClientStreamID: UInt32 = 0
    /// Whether a REQUEST arrived yet (see `idlePeriod`).
    private(set) var hasReceivedACall = false
    /// Last REQUEST, CANCEL or stream end (or the preface); the idle clock runs from here.
    private(set) var lastActivity: NIODeadline?
    /// The opaque of the keepalive PING sent and not yet acknowledged.
    private(set) var unansweredPing: UInt64?
    /// Timers armed, with their deadlines.
    private(set) var armedTimers: [Timer: NIODeadline] = [:]
    /// Mirrors the channel's writability; streaming calls wait while it is false.
    private(set) var isWritable = true
    /// Each stream's frames waiting for room in the output bound, in order: DATA frames, then
    /// its RESPONSE. A stream's frames stay in order; streams take turns (`outputTurns`).
    private(set) var outputQueues: [UInt32: CircularBuffer<Frame>] = [:]
    /// The streams with queued frames, in the order they get their next turn (round-robin: a
    /// stream that sent a frame goes to the back).
    private var outputTurns = CircularBuffer<UInt32>()
    /// Bytes of every frame handed to the channel whose write has not completed: what the
    /// connection holds for its peer. DATA and RESPONSE frames are handed over only while this
    /// stays within `outputLimitForStreams`; control frames always, ahead of them.
    private(set) var bufferedOutputBytes = 0
    /// Bytes of the frames waiting in `outputQueues`.
    private(set) var queuedOutputBytes = 0
    /// Frames handed to the channel whose write has not completed (each `outputWritten` is one).
    private(set) var framesInChannel = 0
    /// Bytes the peer has taken so far (completed writes, or the channel's count; see
    /// `Event.outputTaken`), and its value at the last keepalive and idle checks.
    private var outputTakenBytes = 0
    private var outputTakenAtKeepalive = 0
    /// The peer's TCP acknowledgements (`Event.outputAcknowledged`), and their count at the last
    /// keepalive check; 0 where the system does not say.
    private var outputAcknowledgedBytes = 0
    private var outputAcknowledgedAtKeepalive = 0
    /// When `outputTakenBytes` last grew: a peer taking output is not idle.
    private var outputLastTakenAt: NIODeadline?
    /// Bytes of all frames handed to the channel so far.
    private var outputHandedOverBytes = 0
    /// Streams whose writer was told to wait (its queue was not empty, or the channel not writable).
    private var waitingDataWriters: Set<UInt32> = []
    /// Whether a preface or frame completed during the read being processed (see `readProcessed`).
    private var completedFrameInThisRead = false
    /// Whether the handler has stopped reading (`Event.readingPaused`), and whether it did since
    /// the last keepalive PING was sent.
    private(set) var isReadingPaused = false
    private var readingPausedSincePing = false
    /// Whether the connection holds inbound room for the frame it is receiving (`Event.inboundRoomHeld`),
    /// and whether other connections waited for room when last sampled (`Event.inboundWaiters`).
    private(set) var holdsInboundRoom = false
    private var othersWaitForInboundRoom = false
    /// Calls whose work was started and whose RESPONSE has not yet been handed to the channel:
    /// at most `configuration.maxRunningCalls`. Others wait in `waitingCalls`, in arrival order.
    private(set) var runningCalls: Set<UInt32> = []
    /// Accepted REQUESTs whose work has not started, in arrival order (their deadline runs).
    private var waitingCalls = CircularBuffer<(streamID: UInt32, payload: ByteBuffer, receivedAt: NIODeadline)>()
    private var nextPingOpaque: UInt64

    /// - Parameter pingOpaque: the payload of the first keepalive PING; later ones count up from it.
    init(configuration: ServerConfiguration, pingOpaque: UInt64 = .random(in: .min ... .max)) {
        self.configuration = configuration
        self.nextPingOpaque = pingOpaque
    }

    var isClosed: Bool { phase == .closed }

    /// Closed, or closing (`Phase.closing`): nothing more is read from the peer.
    var isEnding: Bool { phase == .closing || phase == .closed }

    /// The largest PING payload answered: a `Ping` message is at most 11 bytes; 64 leaves room
    /// for fields a later version may add. PING ACKs go out at once, ahead of every queued
    /// frame, so large ones would let a client fill the connection's output with its own bytes
    /// (a tester's 3.9 MB PINGs, read at full speed, got the connection closed as not reading).
    static let maxPingPayload = 64
    /// How often a connection the server is not reading is probed (`Timer.probe`).
    static let probeInterval = TimeAmount.milliseconds(200)
    /// The probe's payload: a `Ping` with opaque 0 (no bytes; the server's own PINGs count up from
    /// a random opaque).
    static let probeFrame = PingMessage(opaque: 0).encoded()

    /// Whether a DATA frame for `streamID` would be written (the stream is open and so is the connection).
    func canSendData(on streamID: UInt32) -> Bool { phase != .closed && streams[streamID] != nil }

    /// Whether streaming calls that just wrote must wait for `resumeDataWriters` because the
    /// channel is not writable (more than half of `maxOutboundBuffer` is buffered in it).
    var dataWritersMustWait: Bool { phase != .closed && !isWritable }

    /// Whether the streaming call on `streamID` must wait for `resumeDataWriters` before it
    /// produces its next DATA frame: while a frame of its own still waits in its queue (its
    /// queue holds at most the one frame it just wrote), or the channel is not writable. A
    /// producer that waits can coalesce what it has into its next frame.
    func dataWriterMustWait(on streamID: UInt32) -> Bool {
        phase != .closed && streams[streamID] != nil && (!isWritable || outputQueues[streamID] != nil)
    }

    /// The most DATA and RESPONSE bytes the channel may hold: `maxOutboundBuffer` less a reserve
    /// (1/8 of it, at most 64 KiB) so that control frames (PING, PING ACK, GOAWAY, refusals),
    /// which are written at once, ahead of queued frames, still fit within the bound. A frame
    /// larger than this goes out alone, once the channel holds nothing.
    var outputLimitForStreams: Int {
        configuration.maxOutboundBuffer - min(64 * 1024, configuration.maxOutboundBuffer / 8)
    }

    /// What the channel may hold before control frames alone prove the peer is not reading:
    /// `maxOutboundBuffer`, or more when one frame larger than `outputLimitForStreams` went out
    /// alone (DATA and RESPONSEs never hold more than the larger of the two).
    var controlOverflowLimit: Int {
        max(configuration.maxOutboundBuffer,
            Wire.frameHeaderSize + configuration.maxFramePayload + min(64 * 1024, configuration.maxOutboundBuffer / 8))
    }

    /// Whether any output waits: queued in streams' queues, or handed to the channel and not yet written.
    var hasPendingOutput: Bool { !outputTurns.isEmpty || bufferedOutputBytes > 0 }

    /// Bytes of output the connection holds for its peer: queued, and handed to the channel and
    /// not yet written (what it counts in the server's `OutputMemoryBudget`); 0 once closed.
    var heldOutputBytes: Int { phase == .closed ? 0 : queuedOutputBytes + bufferedOutputBytes }

    /// How long a connection may sit without a call. Until its first call it is at least the
    /// handshake timeout: a client that just connected has not had the chance to be idle, and a
    /// short idle timeout must not refuse the call it is about to send (a busy client can take a
    /// while between SETTINGS and its first REQUEST).
    var idlePeriod: TimeAmount {
        hasReceivedACall ? configuration.idleTimeout : max(configuration.idleTimeout, configuration.handshakeTimeout)
    }

    // MARK: Events

    /// Applies `event`, which happened at `now` (event loop time), and returns what to do.
    mutating func handle(_ event: Event, now: NIODeadline) -> [Action] {
        var actions: [Action] = []
        switch event {
        case .started:
            guard phase == .awaitingPreface else { break }
            schedule(.handshake, at: now + configuration.handshakeTimeout, &actions)
        case .prefaceReceived:
            guard phase == .awaitingPreface else { break }
            completedFrameInThisRead = true
            cancel(.handshake, &actions)
            phase = .open
            writeControl(Frame(type: .settings, streamID: 0, payload: configuration.connectionSettings.encoded()), &actions)
            lastActivity = now
            armIdleTimer(now: now, &actions)
        case .frameReceived(let frame):
            guard phase == .open || phase == .draining else { break }
            completedFrameInThisRead = true
            receive(frame, now: now, &actions)
        case .framingFailed(let error):
            guard phase != .closed else { break }
            rejectFraming(error, &actions)
        case .readProcessed(let partialFrameBuffered):
            readProcessed(partialFrameBuffered: partialFrameBuffered, now: now, &actions)
        case .readingPaused:
            guard phase != .closed else { break }
            isReadingPaused = true
            readingPausedSincePing = true
            cancel(.frame, &actions)
            cancel(.stall, &actions)
            if armedTimers[.probe] == nil { schedule(.probe, at: now + Self.probeInterval, &actions) }
        case .readingResumed(let partialFrameBuffered):
            guard isReadingPaused else { break }
            isReadingPaused = false
            cancel(.probe, &actions)
            // The client was sending all along: its idle clock starts again too (a tester's
            // connections, read at last, were closed as idle at the same moment).
            lastActivity = now
            // The frame's time runs again from now: the wait was the server's.
            if partialFrameBuffered, phase == .open || phase == .draining {
                schedule(.frame, at: now + configuration.frameTimeout, &actions)
            }
            armStallTimer(partialFrameBuffered: partialFrameBuffered, now: now, &actions)
        case .inboundRoomHeld(let held):
            guard phase != .closed else { break }
            holdsInboundRoom = held
            armStallTimer(partialFrameBuffered: held, now: now, &actions)
        case .inboundWaiters(let present):
            othersWaitForInboundRoom = present
        case .timerFired(let timer):
            // A timer this machine no longer holds (cancelled or replaced) does nothing.
            guard armedTimers.removeValue(forKey: timer) != nil, phase != .closed else { break }
            timerFired(timer, now: now, &actions)
        case .deadlineKnown(let id, let deadline, let requestID, let timeout):
            guard phase != .closed, streams[id] != nil else { break }
            streams[id]?.requestID = requestID
            streams[id]?.timeout = timeout
            schedule(.deadline(streamID: id), at: deadline, &actions)
        case .callFinished(let id, let response):
            finish(id, response: response, now: now, cancelWork: false, &actions)
        case .dataReady(let id, let payload):
            guard canSendData(on: id) else { break }
            enqueue(Frame(type: .data, streamID: id, payload: payload), &actions)
            if dataWriterMustWait(on: id) { waitingDataWriters.insert(id) }
        case .outputWritten(let bytes):
            guard phase != .closed else { break }
            bufferedOutputBytes = max(0, bufferedOutputBytes - bytes)
            framesInChannel = max(0, framesInChannel - 1)
            noteOutputTaken(outputHandedOverBytes - bufferedOutputBytes, now: now)
            if phase == .closing {
                // The GOAWAY was the last frame: once written, close.
                if bufferedOutputBytes == 0 { close(&actions) }
                break
            }
            sendQueuedOutput(&actions)
            closeIfDrained(&actions)
        case .outputTaken(let total):
            noteOutputTaken(min(total, outputHandedOverBytes), now: now)
        case .outputAcknowledged(let total):
            guard total > outputAcknowledgedBytes else { break }
            // The first sample only sets the baseline (it counts everything since the start).
            if outputAcknowledgedBytes > 0 { outputLastTakenAt = now }
            outputAcknowledgedBytes = total
        case .writabilityChanged(let writable):
            isWritable = writable
            if writable {
                waitingDataWriters = waitingDataWriters.filter { dataWriterMustWait(on: $0) }
                actions.append(.resumeDataWriters)
            }
        case .outboundBuffered(let bytes):
            guard phase != .closed, bytes > configuration.maxOutboundBuffer else { break }
            actions.append(.log(.notice, "closing: \(bytes) bytes buffered for a peer that is not reading"))
            close(&actions)
        case .evicted(let eviction):
            guard phase == .open || phase == .draining else { break }
            actions.append(.log(.notice, "closing: evicted for holding \(eviction.heldBytes) bytes of output while all connections held \(eviction.totalBytes), over the output budget of \(eviction.budgetBytes)"))
            goAwayAfterPendingOutput(CallStatus(code: .resourceExhausted, message: "the server's output budget of \(eviction.budgetBytes / (1024 * 1024)) MiB for all connections is exhausted and this connection held \(eviction.heldBytes) bytes of answers not yet read (connections holding output longest and most go first); read answers as they arrive, or ask for fewer at a time"), now: now, &actions)
        case .shutdownRequested:
            beginDrain(now: now, &actions)
        case .closeRequested:
            close(&actions)
        case .internalError:
            failConnection(CallStatus(code: .internal, message: "internal error"), &actions)
        case .channelInactive:
            channelInactive(&actions)
        }
        return actions
    }

    // MARK: Frames

    private mutating func receive(_ frame: Frame, now: NIODeadline, _ actions: inout [Action]) {
        let isControl = frame.type == .ping || frame.type == .settings || frame.type == .goAway
        if isControl, frame.streamID != 0 {
            return failConnection(.invalidArgument, "\(frame.type) frames belong on stream 0, not \(frame.streamID)", &actions)
        }
        if frame.type == .cancel, frame.streamID == 0 {
            return failConnection(.invalidArgument, "CANCEL frames need a stream id", &actions)
        }
        switch frame.type {
        case .request:
            receiveRequest(frame, now: now, &actions)
        case .cancel:
            lastActivity = now
            guard streams.removeValue(forKey: frame.streamID) != nil else { return }
            actions.append(.log(.debug, "stream \(frame.streamID) cancelled by the client"))
            cancel(.deadline(streamID: frame.streamID), &actions)
            actions.append(.cancelCall(streamID: frame.streamID))
            // No RESPONSE follows: its turn to run ends now (or it never started).
            dropWaitingCall(frame.streamID)
            callStoppedRunning(frame.streamID, &actions)
            // Nothing more is written for it: its queued DATA goes, and a waiting writer is let go
            // (its next write finds the stream gone).
            dropQueuedOutput(of: frame.streamID)
            if waitingDataWriters.remove(frame.streamID) != nil { actions.append(.resumeDataWriters) }
            streamEnded(now: now, &actions)
        case .ping where frame.flags.contains(.ack):
            if let opaque = try? PingMessage.decode(frame.payload, limits: configuration.decodeLimits).opaque,
               opaque == unansweredPing {
                unansweredPing = nil
            }
        case .ping:
            guard frame.payload.readableBytes <= Self.maxPingPayload else {
                return failConnection(.invalidArgument,
                    "a PING carries a Ping message of at most \(Self.maxPingPayload) bytes, not \(frame.payload.readableBytes)", &actions)
            }
            writeControl(Frame(type: .ping, flags: .ack, streamID: 0, payload: frame.payload), &actions)
        case .data, .response:
            failConnection(.invalidArgument, "clients do not send \(frame.type) frames", &actions)
        default:
            break  // SETTINGS and GOAWAY from a client carry nothing we act on; unknown types are ignored
        }
    }

    private mutating func receiveRequest(_ frame: Frame, now: NIODeadline, _ actions: inout [Action]) {
        let id = frame.streamID
        guard id % 2 == 1, id > lastClientStreamID, id <= Wire.maxStreamID else {
            return failConnection(.invalidArgument,
                "stream id \(id) is not odd and greater than the previous one (\(lastClientStreamID))", &actions)
        }
        lastClientStreamID = id
        hasReceivedACall = true
        lastActivity = now
        guard phase == .open else {
            return respond(id, CallStatus(code: .unavailable, message: "the server is shutting down; retry on a new connection"), &actions)
        }
        guard streams.count < configuration.maxConcurrentStreams else {
            return respond(id, CallStatus(code: .resourceExhausted,
                message: "more than \(configuration.maxConcurrentStreams) concurrent calls on one connection"), &actions)
        }
        streams[id] = Stream()
        armKeepaliveIfNeeded(now: now, &actions)
        guard runningCalls.count >= configuration.maxRunningCalls else {
            runningCalls.insert(id)
            actions.append(.startCall(streamID: id, payload: frame.payload, receivedAt: now))
            return
        }
        // It waits for one of this connection's running calls to be answered; its deadline runs
        // from now (read from the undecoded bytes; the call re-arms it once decoded).
        let timeout = configuration.callTimeout(requestedMs: CallRequest.peekTimeoutMs(frame.payload) ?? 0)
        streams[id]?.timeout = timeout
        schedule(.deadline(streamID: id), at: now + timeout, &actions)
        waitingCalls.append((id, frame.payload, now))
    }

    /// One of this connection's running calls is done (its RESPONSE handed to the channel, or it
    /// was cancelled): the next waiting ones start while there is room.
    private mutating func callStoppedRunning(_ id: UInt32, _ actions: inout [Action]) {
        guard runningCalls.remove(id) != nil else { return }
        while phase != .closed, runningCalls.count < configuration.maxRunningCalls, let next = waitingCalls.popFirst() {
            runningCalls.insert(next.streamID)
            actions.append(.startCall(streamID: next.streamID, payload: next.payload, receivedAt: next.receivedAt))
        }
    }

    /// Forgets a waiting call that ended before it started (CANCEL, deadline).
    private mutating func dropWaitingCall(_ id: UInt32) {
        guard let index = waitingCalls.firstIndex(where: { $0.streamID == id }) else { return }
        waitingCalls.remove(at: index)
    }

    private mutating func rejectFraming(_ error: FrameDecodingError, _ actions: inout [Action]) {
        switch error {
        case .badPreface(let firstBytes):
            actions.append(.log(.debug, "closing: not our protocol (first bytes \(firstBytes))"))
            close(&actions)
        case .unsupportedVersion:
            failConnection(CallStatus(code: .unimplemented, message: error.description), &actions)
        case .payloadTooLarge:
            failConnection(CallStatus(code: .resourceExhausted, message: error.description), &actions)
        }
    }

    /// The frame timer measures one frame at a time: it starts when a frame's first byte arrives
    /// and stops when that frame is complete. A read that completed a frame (or the preface) and
    /// left bytes of the next one buffered started that next frame, so the timer restarts from
    /// this read; a read that completed nothing continues the frame already being timed. (Timing
    /// from the first partial read until the buffer happens to be empty would measure a run of
    /// frames: a client whose writes are re-chunked never leaves the buffer empty.)
    private mutating func readProcessed(partialFrameBuffered: Bool, now: NIODeadline, _ actions: inout [Action]) {
        defer { completedFrameInThisRead = false }
        // Before the preface the handshake timer bounds the wait; once closed nothing is timed.
        guard phase == .open || phase == .draining else { return }
        if !partialFrameBuffered {
            cancel(.frame, &actions)
        } else if isReadingPaused {
            // Not the client's time while the server does not read (`readingResumed` restarts it).
            cancel(.frame, &actions)
        } else if completedFrameInThisRead || armedTimers[.frame] == nil {
            schedule(.frame, at: now + configuration.frameTimeout, &actions)
        }
        // Bytes arrived: the frame holding inbound room is not stalled (its clock restarts).
        armStallTimer(partialFrameBuffered: partialFrameBuffered, now: now, &actions)
    }

    /// Arms the stall timer from `now` while the connection holds inbound room for a frame still
    /// arriving and is being read; cancels it otherwise. A client that holds room other
    /// connections wait for must keep sending: the frame timeout alone let 100 connections
    /// stalling in 4 MiB frames hold up another client's large request for 58 s, room for 8 of
    /// them at a time, 10 s each (issue 12, a tester's run). `.zero` turns the rule off.
    private mutating func armStallTimer(partialFrameBuffered: Bool, now: NIODeadline, _ actions: inout [Action]) {
        if partialFrameBuffered, holdsInboundRoom, !isReadingPaused, configuration.inboundStallTimeout > .zero,
           phase == .open || phase == .draining {
            schedule(.stall, at: now + configuration.inboundStallTimeout, &actions)
        } else {
            cancel(.stall, &actions)
        }
    }

    // MARK: Timers

    private mutating func timerFired(_ timer: Timer, now: NIODeadline, _ actions: inout [Action]) {
        switch timer {
        case .handshake:
            guard phase == .awaitingPreface else { return }
            actions.append(.log(.debug, "closing: no preface within the handshake timeout"))
            close(&actions)
        case .frame:
            failConnection(.deadlineExceeded,
                "a frame did not arrive whole within \(configuration.frameTimeout.nanoseconds / 1_000_000) ms", &actions)
        case .idle:
            guard phase == .open || phase == .draining, var lastActivity else { return }
            // A client whose bytes the server is not reading is not idle, unless output waits
            // for it too (then it must be taking it: below).
            if isReadingPaused, !hasPendingOutput { lastActivity = now }
            // A peer taking the output sent to it is not idle.
            if let taken = outputLastTakenAt, taken > lastActivity { lastActivity = taken }
            if !outputTurns.isEmpty {
                // Frames still waiting are not idleness, but a peer that took none of the output
                // for a whole idle period is not reading (with keepalive off, the only check of that).
                if now >= lastActivity + idlePeriod { return closeNotReading(now: now, &actions) }
            } else if streams.isEmpty, now >= lastActivity + idlePeriod {
                return failConnection(CallStatus(code: .ok, message: "idle timeout"), &actions)
            } else if !streams.isEmpty {
                lastActivity = now
            }
            self.lastActivity = lastActivity
            armIdleTimer(now: now, &actions)
        case .keepalive:
            guard phase == .open || phase == .draining, !streams.isEmpty || !outputTurns.isEmpty else { return }
            // More than the PING itself taken since the last check.
            let tookOutput = outputTakenBytes - outputTakenAtKeepalive > Self.pingFrameBytes
                || outputAcknowledgedBytes - outputAcknowledgedAtKeepalive > Self.pingFrameBytes
            outputTakenAtKeepalive = outputTakenBytes
            outputAcknowledgedAtKeepalive = outputAcknowledgedBytes
            if unansweredPing != nil {
                // A peer that is still taking output has not read the PING yet: it sits behind
                // output in the socket's buffers (the kernel's too, which can hold megabytes the
                // connection no longer counts). It is slow, not gone: closed only when it took
                // nothing but the PING for a whole interval.
                // Nor is one whose answer may wait unread behind bytes the server did not read,
                // as long as the server holds no output for it: a peer that reads none of its
                // answers is closed whatever the server reads of it (a tester's connections,
                // paused and reading nothing, otherwise held their answers for good).
                let answerMayBeUnread = (isReadingPaused || readingPausedSincePing) && !hasPendingOutput
                readingPausedSincePing = isReadingPaused
                guard tookOutput || answerMayBeUnread else {
                    return failConnection(.unavailable,
                        hasPendingOutput ? "keepalive PING not answered and no output read for \(configuration.keepaliveInterval.nanoseconds / 1_000_000) ms"
                            : "keepalive PING not answered", &actions)
                }
                return armKeepaliveIfNeeded(now: now, &actions)
            }
            let opaque = nextPingOpaque
            nextPingOpaque &+= 1
            unansweredPing = opaque
            readingPausedSincePing = isReadingPaused
            writeControl(Frame(type: .ping, streamID: 0, payload: PingMessage(opaque: opaque).encoded()), &actions)
            armKeepaliveIfNeeded(now: now, &actions)
        case .stall:
            guard phase == .open || phase == .draining, holdsInboundRoom, !isReadingPaused else { return }
            guard othersWaitForInboundRoom else {
                // Nobody waits for its room: a slow client may take its time (the frame timeout bounds it).
                return schedule(.stall, at: now + configuration.inboundStallTimeout, &actions)
            }
            failConnection(.resourceExhausted,
                "no byte of the frame being received for \(configuration.inboundStallTimeout.nanoseconds / 1_000_000) ms while it held room in the server's inbound memory that other connections wait for", &actions)
        case .linger:
            guard phase == .closing else { return }
            close(&actions)
        case .probe:
            // A peer that closed while the server was not reading it cannot say so: its FIN waits
            // behind the bytes the server has not read, and its calls would run to their end (a
            // tester's 4 connections x 8 pipelined 4 MB backtests, killed, kept 2.5 s of CPU
            // busy; one waiting for inbound room held it after its client left). Bytes written to
            // a closed socket are answered with a reset, which closes the connection and cancels
            // its calls. So while reading is paused and nothing else is being written to it, the
            // server writes a PING ACK the peer never asked for (which a client ignores,
            // PROTOCOL.md) every `probeInterval`; not counted as output taken.
            guard phase == .open || phase == .draining, isReadingPaused else { return }
            if !hasPendingOutput {
                outputTakenAtKeepalive += Wire.frameHeaderSize + Self.probeFrame.readableBytes
                outputAcknowledgedAtKeepalive += Wire.frameHeaderSize + Self.probeFrame.readableBytes
                writeControl(Frame(type: .ping, flags: .ack, streamID: 0, payload: Self.probeFrame), &actions)
            }
            schedule(.probe, at: now + Self.probeInterval, &actions)
        case .drain:
            guard phase == .draining else { return }
            actions.append(.log(.notice, "drain timeout: closing with \(streams.count) calls in flight"))
            close(&actions)
        case .deadline(let id):
            guard let stream = streams[id] else { return }
            let timeout = stream.timeout ?? .zero
            actions.append(.cancelCall(streamID: id))
            let response = CallResponse(
                header: ResponseHeader(requestID: EchoBounds.echoable(stream.requestID), serverVersion: configuration.serverVersion),
                status: CallStatus(code: .deadlineExceeded, message: "deadline of \(timeout.nanoseconds / 1_000_000) ms exceeded"))
            finish(id, response: response.encoded(), now: now, cancelWork: true, &actions)
        }
    }

    private mutating func armIdleTimer(now: NIODeadline, _ actions: inout [Action]) {
        // Never in the past: while a long call runs, check again one idle period from now.
        let deadline = max((lastActivity ?? now) + idlePeriod, now + .milliseconds(1))
        schedule(.idle, at: deadline, &actions)
    }

    private mutating func armKeepaliveIfNeeded(now: NIODeadline, _ actions: inout [Action]) {
        guard armedTimers[.keepalive] == nil, configuration.keepaliveInterval > .zero else { return }
        schedule(.keepalive, at: now + configuration.keepaliveInterval, &actions)
    }

    private mutating func schedule(_ timer: Timer, at deadline: NIODeadline, _ actions: inout [Action]) {
        armedTimers[timer] = deadline
        actions.append(.schedule(timer, at: deadline))
    }

    private mutating func cancel(_ timer: Timer, _ actions: inout [Action]) {
        guard armedTimers.removeValue(forKey: timer) != nil else { return }
        actions.append(.cancelTimer(timer))
    }

    // MARK: Streams

    /// Ends a stream with its RESPONSE, unless something else ended it first.
    /// The RESPONSE follows the stream's queued DATA frames (a stream's frames stay in order). One
    /// above the frame limit would never be sent: it is replaced by RESOURCE_EXHAUSTED, without
    /// echoing anything of the request.
    private mutating func finish(_ id: UInt32, response: ByteBuffer, now: NIODeadline, cancelWork: Bool,
                                 _ actions: inout [Action]) {
        guard phase != .closed, streams.removeValue(forKey: id) != nil else { return }
        cancel(.deadline(streamID: id), &actions)
        if !cancelWork { actions.append(.releaseCall(streamID: id)) }
        // A call that never started (its deadline passed while it waited) holds no turn.
        dropWaitingCall(id)
        var payload = response
        if payload.readableBytes > configuration.maxFramePayload {
            actions.append(.log(.warning, "stream \(id): a RESPONSE of \(payload.readableBytes) bytes is above the frame limit; answering RESOURCE_EXHAUSTED"))
            payload = CallResponse(header: ResponseHeader(serverVersion: configuration.serverVersion),
                status: CallStatus(code: .resourceExhausted,
                    message: "the answer is \(response.readableBytes) bytes, above the frame limit of \(configuration.maxFramePayload)")).encoded()
        }
        waitingDataWriters.remove(id)
        enqueue(Frame(type: .response, streamID: id, payload: payload), &actions)
        streamEnded(now: now, &actions)
    }

    /// A refusal of a REQUEST that never became a stream: a small control answer, written at once.
    private mutating func respond(_ id: UInt32, _ status: CallStatus, _ actions: inout [Action]) {
        let response = CallResponse(header: ResponseHeader(serverVersion: configuration.serverVersion), status: status)
        writeControl(Frame(type: .response, streamID: id, payload: response.encoded()), &actions)
    }

    private mutating func streamEnded(now: NIODeadline, _ actions: inout [Action]) {
        lastActivity = now
        closeIfDrained(&actions)
    }

    /// While draining: closes once the last call ended and its frames were handed to the channel.
    private mutating func closeIfDrained(_ actions: inout [Action]) {
        if phase == .draining, streams.isEmpty, outputTurns.isEmpty {
            actions.append(.log(.debug, "drained: closing"))
            close(&actions)
        }
    }

    // MARK: Output

    /// A keepalive PING on the wire: the header and a `Ping` with a 64-bit opaque.
    static let pingFrameBytes = Wire.frameHeaderSize + 9

    /// The bytes a frame takes on the wire.
    private static func wireSize(_ frame: Frame) -> Int { Wire.frameHeaderSize + frame.payload.readableBytes }

    /// Writes a control frame (SETTINGS, PING, PING ACK, GOAWAY, a refusal) at once, ahead of
    /// every queued frame. They are small and few, but a peer that keeps sending PINGs without
    /// reading would grow the output without end: beyond `controlOverflowLimit` it is not reading.
    private mutating func writeControl(_ frame: Frame, _ actions: inout [Action]) {
        handOver(frame, &actions)
        if bufferedOutputBytes > controlOverflowLimit, phase != .closed {
            actions.append(.log(.notice, "closing: \(bufferedOutputBytes) bytes buffered for a peer that is not reading"))
            close(&actions)
        } else if framesInChannel > Self.maxFramesInChannel, phase != .closed {
            // Each frame waiting costs far more than its bytes (a buffer, a promise, a queue
            // entry): a tester's 64-byte PINGs, their ACKs never read, took the server to 1.3 GB
            // within the byte bounds. HTTP/2 servers bound queued control frames the same way
            // (nghttp2's 1,000, after CVE-2019-9512 "Ping Flood"). No GOAWAY: it would wait
            // behind the others, for a peer that reads none of them.
            actions.append(.log(.notice, "closing: \(framesInChannel) frames waiting for a peer that is not reading"))
            close(&actions)
        }
    }

    /// The most frames the channel may hold before a control frame proves the peer does not
    /// read (DATA and RESPONSEs never come near: they go one at a time per call, within the
    /// output bound).
    static let maxFramesInChannel = 1000

    private mutating func handOver(_ frame: Frame, _ actions: inout [Action]) {
        let size = Self.wireSize(frame)
        bufferedOutputBytes += size
        outputHandedOverBytes += size
        framesInChannel += 1
        actions.append(.write(frame))
    }

    /// Queues a stream's frame behind its earlier ones and sends what fits.
    private mutating func enqueue(_ frame: Frame, _ actions: inout [Action]) {
        let id = frame.streamID
        if outputQueues[id] == nil {
            outputQueues[id] = CircularBuffer(initialCapacity: 2)
            outputTurns.append(id)
        }
        outputQueues[id]!.append(frame)
        queuedOutputBytes += Self.wireSize(frame)
        sendQueuedOutput(&actions)
    }

    /// Hands queued frames to the channel, one per stream in turn, while they fit within
    /// `outputLimitForStreams` (a frame goes out alone when the channel holds nothing). Writers
    /// whose queue emptied are resumed.
    private mutating func sendQueuedOutput(_ actions: inout [Action]) {
        var resume = false
        while phase != .closed, let id = outputTurns.first, let frame = outputQueues[id]?.first {
            let size = Self.wireSize(frame)
            guard bufferedOutputBytes == 0 || bufferedOutputBytes + size <= outputLimitForStreams else { break }
            outputTurns.removeFirst()
            outputQueues[id]!.removeFirst()
            queuedOutputBytes -= size
            if outputQueues[id]!.isEmpty {
                outputQueues[id] = nil
                if isWritable, waitingDataWriters.remove(id) != nil { resume = true }
            } else {
                outputTurns.append(id)
            }
            handOver(frame, &actions)
            if frame.type == .response { callStoppedRunning(id, &actions) }
        }
        if resume { actions.append(.resumeDataWriters) }
    }

    private mutating func dropQueuedOutput(of id: UInt32) {
        guard let queue = outputQueues.removeValue(forKey: id) else { return }
        queuedOutputBytes -= queue.reduce(0) { $0 + Self.wireSize($1) }
        if let index = outputTurns.firstIndex(of: id) { outputTurns.remove(at: index) }
    }

    private mutating func noteOutputTaken(_ total: Int, now: NIODeadline) {
        guard total > outputTakenBytes else { return }
        outputTakenBytes = total
        outputLastTakenAt = now
    }

    /// The peer took nothing of the output waiting for it for a whole idle period.
    private mutating func closeNotReading(now: NIODeadline, _ actions: inout [Action]) {
        actions.append(.log(.notice,
            "closing: \(bufferedOutputBytes) bytes buffered for a peer that is not reading (none read for \(idlePeriod.nanoseconds / 1_000_000) ms)"))
        close(&actions)
    }

    // MARK: Shutdown

    /// Graceful shutdown: GOAWAY with the last accepted stream; in-flight calls finish, later
    /// REQUESTs get UNAVAILABLE; the connection closes when the last call ends, or when the drain
    /// timeout expires.
    private mutating func beginDrain(now: NIODeadline, _ actions: inout [Action]) {
        switch phase {
        case .awaitingPreface:
            close(&actions)
        case .open:
            phase = .draining
            writeControl(Frame(type: .goAway, streamID: 0, payload: GoAwayMessage(
                lastStreamID: lastClientStreamID, status: CallStatus(code: .ok, message: "server shutting down")).encoded()), &actions)
            if streams.isEmpty, outputTurns.isEmpty {
                close(&actions)
            } else {
                schedule(.drain, at: now + configuration.drainTimeout, &actions)
            }
        case .draining, .closing, .closed:
            break
        }
    }

    private mutating func failConnection(_ code: StatusCode, _ message: String, _ actions: inout [Action]) {
        failConnection(CallStatus(code: code, message: message), &actions)
    }

    /// Ends the connection with `status` so that a client still reading gets it: its calls are
    /// cancelled and their queued frames dropped at once, the GOAWAY goes behind what the channel
    /// already holds (a frame may be half written), and the connection closes once that is
    /// written, or after `lingerTimeout`. (Closing at once dropped the GOAWAY with the rest: a
    /// tester's evicted clients saw a frame cut short and EOF, nothing saying why.)
    private mutating func goAwayAfterPendingOutput(_ status: CallStatus, now: NIODeadline, _ actions: inout [Action]) {
        cancelEveryTimer(&actions)
        cancelEveryCall(&actions)
        phase = .closing
        handOver(Frame(type: .goAway, streamID: 0,
                       payload: GoAwayMessage(lastStreamID: lastClientStreamID, status: status).encoded()), &actions)
        schedule(.linger, at: now + Self.lingerTimeout, &actions)
    }

    /// Sends GOAWAY with `status` and closes; in-flight calls are cancelled when the channel goes inactive.
    private mutating func failConnection(_ status: CallStatus, _ actions: inout [Action]) {
        guard phase != .closed else { return }
        if status.code != .ok { actions.append(.log(.debug, "closing connection: \(status)")) }
        writeControl(Frame(type: .goAway, streamID: 0,
                           payload: GoAwayMessage(lastStreamID: lastClientStreamID, status: status).encoded()), &actions)
        close(&actions)
    }

    private mutating func close(_ actions: inout [Action]) {
        guard phase != .closed else { return }
        phase = .closed
        actions.append(.close)
    }

    private mutating func channelInactive(_ actions: inout [Action]) {
        phase = .closed
        cancelEveryTimer(&actions)
        if !streams.isEmpty {
            actions.append(.log(.debug, "connection closed with \(streams.count) calls in flight: cancelled"))
        }
        cancelEveryCall(&actions)
    }

    private mutating func cancelEveryTimer(_ actions: inout [Action]) {
        for timer in armedTimers.keys.sorted(by: { $0.description < $1.description }) {
            actions.append(.cancelTimer(timer))
        }
        armedTimers.removeAll()
    }

    /// The connection is ending: every call is cancelled (running or waiting its turn), every
    /// queued frame dropped, and the writers waiting for room fail.
    private mutating func cancelEveryCall(_ actions: inout [Action]) {
        for id in streams.keys.sorted() { actions.append(.cancelCall(streamID: id)) }
        streams.removeAll()
        runningCalls.removeAll()
        waitingCalls.removeAll()
        outputQueues.removeAll()
        queuedOutputBytes = 0
        outputTurns.removeAll()
        waitingDataWriters.removeAll()
        actions.append(.failDataWriters)
    }
}
