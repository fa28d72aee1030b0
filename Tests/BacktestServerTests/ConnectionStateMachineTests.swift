import BacktestCore
import BacktestProtocol
import NIOCore
import Testing

@testable import BacktestServer

/// The connection's logic as a value: events with explicit times in, actions out. No channel, no
/// event loop, no clock but the `now` each event carries.
@Suite("Connection state machine")
struct ConnectionStateMachineTests {
    typealias Machine = ConnectionStateMachine
    static let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)

    static func configuration() -> ServerConfiguration {
        var configuration = ServerConfiguration()
        configuration.handshakeTimeout = .seconds(5)
        configuration.idleTimeout = .seconds(60)
        configuration.frameTimeout = .seconds(10)
        configuration.keepaliveInterval = .seconds(30)
        configuration.drainTimeout = .seconds(30)
        configuration.maxConcurrentStreams = 2
        configuration.maxOutboundBuffer = 1000
        return configuration
    }

    /// A machine past the preface at `t0`, with `configure` applied to `configuration()`.
    static func open(_ configure: (inout ServerConfiguration) -> Void = { _ in }) -> Machine {
        var settings = Self.configuration()
        configure(&settings)
        var machine = Machine(configuration: settings, pingOpaque: 7)
        _ = machine.handle(.started, now: t0)
        _ = machine.handle(.prefaceReceived, now: t0)
        _ = machine.handle(.readProcessed(partialFrameBuffered: false), now: t0)
        return machine
    }

    static func request(_ id: UInt32) -> Frame {
        Frame(type: .request, streamID: id, payload: ByteBuffer(bytes: [1, 2, 3]))
    }

    static func writes(_ actions: [Machine.Action]) -> [Frame] {
        actions.compactMap { if case .write(let frame) = $0 { frame } else { nil } }
    }

    static func goAway(_ actions: [Machine.Action]) throws -> GoAwayMessage? {
        try writes(actions).first { $0.type == .goAway }.map { try GoAwayMessage.decode($0.payload) }
    }

    @Test func startArmsTheHandshakeTimerAndThePrefaceAnswersSettings() throws {
        var machine = Machine(configuration: Self.configuration())
        #expect(machine.handle(.started, now: Self.t0) == [.schedule(.handshake, at: Self.t0 + .seconds(5))])
        let actions = machine.handle(.prefaceReceived, now: Self.t0 + .seconds(1))
        #expect(actions.first == .cancelTimer(.handshake))
        let settings = try #require(Self.writes(actions).first)
        #expect(settings.type == .settings)
        #expect(try ConnectionSettings.decode(settings.payload).maxConcurrentStreams == 2)
        // The idle clock starts at the preface.
        #expect(actions.last == .schedule(.idle, at: Self.t0 + .seconds(61)))
        #expect(machine.phase == .open)
    }

    @Test func handshakeTimerClosesWithoutAnswerOnlyBeforeThePreface() {
        var machine = Machine(configuration: Self.configuration())
        _ = machine.handle(.started, now: Self.t0)
        let actions = machine.handle(.timerFired(.handshake), now: Self.t0 + .seconds(5))
        #expect(Self.writes(actions).isEmpty)
        #expect(actions.contains(.close))
        #expect(machine.isClosed)
    }

    @Test func aTimerTheMachineNoLongerHoldsDoesNothing() {
        var machine = Self.open()
        // The handshake timer was cancelled by the preface: a late firing is ignored.
        #expect(machine.handle(.timerFired(.handshake), now: Self.t0 + .seconds(5)).isEmpty)
        #expect(machine.handle(.timerFired(.frame), now: Self.t0 + .seconds(10)).isEmpty)
        #expect(machine.phase == .open)
    }

    @Test func frameTimerRestartsWhenAFrameCompletesAndRunsWhileNoneDoes() throws {
        var machine = Self.open()
        // A read leaves part of a frame: the timer starts.
        #expect(machine.handle(.readProcessed(partialFrameBuffered: true), now: Self.t0 + .seconds(1))
            == [.schedule(.frame, at: Self.t0 + .seconds(11))])
        // More bytes of the same frame: the clock keeps running from its first byte.
        #expect(machine.handle(.readProcessed(partialFrameBuffered: true), now: Self.t0 + .seconds(5)).isEmpty)
        // That frame completes and the read leaves the start of the next one: timed from this read.
        _ = machine.handle(.frameReceived(Frame(type: .ping, streamID: 0, payload: ByteBuffer())), now: Self.t0 + .seconds(9))
        #expect(machine.handle(.readProcessed(partialFrameBuffered: true), now: Self.t0 + .seconds(9))
            == [.schedule(.frame, at: Self.t0 + .seconds(19))])
        // Everything complete: the timer stops.
        _ = machine.handle(.frameReceived(Frame(type: .ping, streamID: 0, payload: ByteBuffer())), now: Self.t0 + .seconds(12))
        #expect(machine.handle(.readProcessed(partialFrameBuffered: false), now: Self.t0 + .seconds(12)) == [.cancelTimer(.frame)])
        #expect(machine.armedTimers[.frame] == nil)
    }

    @Test func frameTimerFiringIsGoAwayDeadlineExceeded() throws {
        var machine = Self.open()
        _ = machine.handle(.readProcessed(partialFrameBuffered: true), now: Self.t0)
        let actions = machine.handle(.timerFired(.frame), now: Self.t0 + .seconds(10))
        let goAway = try #require(try Self.goAway(actions))
        #expect(goAway.status.code == .deadlineExceeded)
        #expect(goAway.status.message == "a frame did not arrive whole within 10000 ms")
        #expect(actions.last == .close)
    }

    @Test func partialPrefaceIsNotFrameTimed() {
        var machine = Machine(configuration: Self.configuration())
        _ = machine.handle(.started, now: Self.t0)
        #expect(machine.handle(.readProcessed(partialFrameBuffered: true), now: Self.t0).isEmpty)
    }

    @Test func requestsStartCallsUpToTheLimitAndRefuseTheRest() throws {
        var machine = Self.open()
        let first = machine.handle(.frameReceived(Self.request(1)), now: Self.t0)
        #expect(first == [.schedule(.keepalive, at: Self.t0 + .seconds(30)),
                          .startCall(streamID: 1, payload: ByteBuffer(bytes: [1, 2, 3]), receivedAt: Self.t0)])
        // The keepalive timer is armed once.
        #expect(machine.handle(.frameReceived(Self.request(3)), now: Self.t0)
            == [.startCall(streamID: 3, payload: ByteBuffer(bytes: [1, 2, 3]), receivedAt: Self.t0)])
        let refused = machine.handle(.frameReceived(Self.request(5)), now: Self.t0)
        let response = try #require(Self.writes(refused).first)
        #expect(response.type == .response && response.streamID == 5)
        #expect(try CallResponse.decode(response.payload).status.code == .resourceExhausted)
        #expect(machine.phase == .open)
        #expect(machine.streams.keys.sorted() == [1, 3])
    }

    @Test(arguments: [(UInt32(2), UInt32(0)), (UInt32(3), UInt32(5)), (UInt32(5), UInt32(5)), (UInt32(0x8000_0001), UInt32(0))])
    func badStreamIDsAreAProtocolError(id: UInt32, previous: UInt32) throws {
        var machine = Self.open()
        if previous > 0 { _ = machine.handle(.frameReceived(Self.request(previous)), now: Self.t0) }
        let actions = machine.handle(.frameReceived(Self.request(id)), now: Self.t0)
        #expect(try Self.goAway(actions)?.status.code == .invalidArgument)
        #expect(actions.contains(.close))
    }

    @Test func callFinishedWritesTheResponseOnceAndCancelsTheDeadline() throws {
        var machine = Self.open()
        _ = machine.handle(.frameReceived(Self.request(1)), now: Self.t0)
        _ = machine.handle(.deadlineKnown(streamID: 1, deadline: Self.t0 + .seconds(3), requestID: "r", timeout: .seconds(3)),
                           now: Self.t0)
        #expect(machine.armedTimers[.deadline(streamID: 1)] == Self.t0 + .seconds(3))
        let payload = CallResponse(header: ResponseHeader(), status: CallStatus(code: .ok, message: "")).encoded()
        let actions = machine.handle(.callFinished(streamID: 1, response: payload), now: Self.t0 + .seconds(1))
        #expect(actions == [.cancelTimer(.deadline(streamID: 1)), .releaseCall(streamID: 1),
                            .write(Frame(type: .response, streamID: 1, payload: payload))])
        // A second ending (a late deadline, a duplicate finish) finds the stream gone.
        #expect(machine.handle(.callFinished(streamID: 1, response: payload), now: Self.t0 + .seconds(2)).isEmpty)
        #expect(machine.handle(.timerFired(.deadline(streamID: 1)), now: Self.t0 + .seconds(3)).isEmpty)
    }

    @Test func deadlineCancelsTheCallAndAnswersDeadlineExceededWithTheRequestID() throws {
        var machine = Self.open()
        _ = machine.handle(.frameReceived(Self.request(1)), now: Self.t0)
        _ = machine.handle(.deadlineKnown(streamID: 1, deadline: Self.t0 + .seconds(3), requestID: "r7", timeout: .seconds(3)),
                           now: Self.t0)
        let actions = machine.handle(.timerFired(.deadline(streamID: 1)), now: Self.t0 + .seconds(3))
        #expect(actions.first == .cancelCall(streamID: 1))
        let response = try CallResponse.decode(try #require(Self.writes(actions).first).payload)
        #expect(response.status.code == .deadlineExceeded)
        #expect(response.status.message == "deadline of 3000 ms exceeded")
        #expect(response.header.requestID == "r7")
        #expect(machine.streams.isEmpty)
    }

    @Test func cancelFrameCancelsTheCallWithoutAResponse() {
        var machine = Self.open()
        _ = machine.handle(.frameReceived(Self.request(1)), now: Self.t0)
        let actions = machine.handle(.frameReceived(Frame(type: .cancel, streamID: 1, payload: ByteBuffer())), now: Self.t0)
        #expect(actions.contains(.cancelCall(streamID: 1)))
        #expect(Self.writes(actions).isEmpty)
        #expect(machine.streams.isEmpty)
    }

    @Test func keepalivePingsWhileCallsRunAndClosesWhenOneGoesUnanswered() throws {
        var machine = Self.open()
        _ = machine.handle(.frameReceived(Self.request(1)), now: Self.t0)
        let first = machine.handle(.timerFired(.keepalive), now: Self.t0 + .seconds(30))
        let ping = try #require(Self.writes(first).first)
        #expect(ping.type == .ping && !ping.flags.contains(.ack))
        #expect(try PingMessage.decode(ping.payload).opaque == 7)
        #expect(first.last == .schedule(.keepalive, at: Self.t0 + .seconds(60)))
        // Answered: the next one goes out with a new opaque.
        _ = machine.handle(.frameReceived(Frame(type: .ping, flags: .ack, streamID: 0, payload: ping.payload)), now: Self.t0 + .seconds(31))
        let second = machine.handle(.timerFired(.keepalive), now: Self.t0 + .seconds(60))
        #expect(try PingMessage.decode(try #require(Self.writes(second).first).payload).opaque == 8)
        // Not answered: the next due time closes the connection.
        let third = machine.handle(.timerFired(.keepalive), now: Self.t0 + .seconds(90))
        #expect(try Self.goAway(third)?.status.code == .unavailable)
        #expect(third.last == .close)
    }

    /// While the server does not read a connection (its next frame waits for the inbound
    /// budget), the frame clock stops, and a PING answer that may sit behind the unread bytes
    /// does not close it; the clocks run again once reading resumes.
    @Test func pausedReadingStopsTheFrameClockAndExcusesAnUnansweredPing() throws {
        var machine = Self.open()
        _ = machine.handle(.outputWritten(bytes: 1_000), now: Self.t0)  // the SETTINGS were taken
        _ = machine.handle(.frameReceived(Self.request(1)), now: Self.t0)
        _ = machine.handle(.readProcessed(partialFrameBuffered: true), now: Self.t0)
        #expect(machine.handle(.readingPaused, now: Self.t0 + .seconds(1))
            == [.cancelTimer(.frame), .schedule(.probe, at: Self.t0 + .seconds(1) + Machine.probeInterval)])
        // Another read while paused (bytes already on their way) does not restart it.
        #expect(machine.handle(.readProcessed(partialFrameBuffered: true), now: Self.t0 + .seconds(2)).isEmpty)
        let ping = machine.handle(.timerFired(.keepalive), now: Self.t0 + .seconds(30))
        #expect(Self.writes(ping).first?.type == .ping)
        _ = machine.handle(.outputWritten(bytes: Machine.pingFrameBytes), now: Self.t0 + .seconds(30))
        // Unanswered at the next check, but the server is not reading and holds no output for
        // the peer: not closed.
        let excused = machine.handle(.timerFired(.keepalive), now: Self.t0 + .seconds(60))
        #expect(excused == [.schedule(.keepalive, at: Self.t0 + .seconds(90))])
        // No idle close either, though nothing was read for the idle period.
        let idle = machine.handle(.timerFired(.idle), now: Self.t0 + .seconds(61))
        #expect(try Self.goAway(idle) == nil)
        #expect(machine.handle(.readingResumed(partialFrameBuffered: true), now: Self.t0 + .seconds(70))
            == [.cancelTimer(.probe), .schedule(.frame, at: Self.t0 + .seconds(80))])
        // Reading resumed is activity: an idle check right after does not close it.
        #expect(try Self.goAway(machine.handle(.timerFired(.idle), now: Self.t0 + .seconds(70))) == nil)
        // Paused during the last interval: excused once more, then the PING must be answered.
        #expect(try Self.goAway(machine.handle(.timerFired(.keepalive), now: Self.t0 + .seconds(90))) == nil)
        let closed = machine.handle(.timerFired(.keepalive), now: Self.t0 + .seconds(120))
        #expect(try Self.goAway(closed)?.status.code == .unavailable)
    }

    static func started(_ actions: [Machine.Action]) -> [UInt32] {
        actions.compactMap { if case .startCall(let id, _, _) = $0 { id } else { nil } }
    }

    /// At most `maxRunningCalls` calls of a connection run at once, each until its RESPONSE is
    /// handed to the channel; the others wait in arrival order with their deadline running
    /// (issue 12: 256 pipelined calls whose answers were never read held 957 MB).
    @Test func callsBeyondTheRunningLimitWaitTheirTurn() throws {
        var machine = Self.open {
            $0.maxConcurrentStreams = 10
            $0.maxRunningCalls = 2
        }
        let configuration = machine.configuration
        var startedIDs: [UInt32] = []
        for id: UInt32 in [1, 3, 5, 7] {
            startedIDs += Self.started(machine.handle(.frameReceived(Self.request(id)), now: Self.t0))
        }
        #expect(startedIDs == [1, 3])
        #expect(machine.runningCalls == [1, 3])
        // A waiting call's deadline runs from its arrival (no timeout given: the maximum).
        #expect(machine.armedTimers[.deadline(streamID: 5)] == Self.t0 + configuration.maxCallTimeout)
        // Call 1 answers: its RESPONSE goes out and call 5 starts.
        let answered = machine.handle(.callFinished(streamID: 1, response: ByteBuffer(bytes: [0])), now: Self.t0 + .seconds(1))
        #expect(Self.writes(answered).map(\.type) == [.response])
        #expect(Self.started(answered) == [5])
        // CANCEL of the waiting call 7: it never starts, and no RESPONSE follows.
        let cancelled = machine.handle(.frameReceived(Frame(type: .cancel, streamID: 7, payload: ByteBuffer())), now: Self.t0 + .seconds(1))
        #expect(cancelled.contains(.cancelCall(streamID: 7)))
        #expect(Self.writes(cancelled).isEmpty)
        // CANCEL of a running call frees its turn at once.
        _ = machine.handle(.frameReceived(Self.request(9)), now: Self.t0 + .seconds(2))
        let freed = machine.handle(.frameReceived(Frame(type: .cancel, streamID: 3, payload: ByteBuffer())), now: Self.t0 + .seconds(2))
        #expect(Self.started(freed) == [9])
        #expect(machine.runningCalls == [5, 9])
    }

    @Test func aWaitingCallEndsAtItsOwnDeadlineWithoutStarting() throws {
        var machine = Self.open { $0.maxRunningCalls = 1 }
        _ = machine.handle(.frameReceived(Self.request(1)), now: Self.t0)
        let timed = CallRequest(header: RequestHeader(timeoutMs: 300), method: .serverInfo).encoded()
        let waiting = machine.handle(.frameReceived(Frame(type: .request, streamID: 3, payload: timed)), now: Self.t0)
        #expect(Self.started(waiting).isEmpty)
        #expect(waiting.contains(.schedule(.deadline(streamID: 3), at: Self.t0 + .milliseconds(300))))
        let expired = machine.handle(.timerFired(.deadline(streamID: 3)), now: Self.t0 + .milliseconds(300))
        let response = try #require(Self.writes(expired).first { $0.streamID == 3 })
        #expect(try CallResponse.decode(response.payload).status.code == .deadlineExceeded)
        // When call 1 ends, nothing is left to start.
        #expect(Self.started(machine.handle(.callFinished(streamID: 1, response: ByteBuffer(bytes: [0])), now: Self.t0 + .seconds(1))).isEmpty)
        #expect(machine.runningCalls.isEmpty)
    }

    /// Paused reading excuses nothing when answers wait for the peer: one that takes none of
    /// them is closed at the keepalive check as any peer that does not read.
    @Test func pausedReadingDoesNotExcuseAPeerThatReadsNoAnswers() throws {
        var machine = Self.open { $0.maxOutboundBuffer = 100_000 }
        _ = machine.handle(.outputWritten(bytes: 1_000), now: Self.t0)  // SETTINGS taken
        _ = machine.handle(.frameReceived(Self.request(1)), now: Self.t0)
        _ = machine.handle(.frameReceived(Self.request(3)), now: Self.t0)
        // An answer larger than the output bound goes out alone and is never taken; the next waits.
        _ = machine.handle(.callFinished(streamID: 1, response: ByteBuffer(repeating: 0, count: 200_000)), now: Self.t0)
        _ = machine.handle(.readingPaused, now: Self.t0 + .seconds(1))
        #expect(machine.hasPendingOutput)
        _ = machine.handle(.timerFired(.keepalive), now: Self.t0 + .seconds(30))
        let closed = machine.handle(.timerFired(.keepalive), now: Self.t0 + .seconds(60))
        #expect(try Self.goAway(closed)?.status.code == .unavailable)
        #expect(closed.last == .close)
    }

    /// A peer that closed while the server was not reading it cannot say so (its FIN waits behind
    /// the unread bytes): while reading is paused with calls in flight, a PING ACK is written
    /// every `probeInterval`, so a closed peer answers with a reset (a tester's killed clients
    /// with 4 MB backtests pipelined kept 2.5 s of CPU busy; now 30 ms).
    @Test func aConnectionNotReadWithCallsInFlightIsProbed() throws {
        var machine = Self.open()
        _ = machine.handle(.outputWritten(bytes: 1_000), now: Self.t0)  // the SETTINGS were taken
        // Without calls too: a connection waiting for inbound room holds it until it is read.
        #expect(machine.handle(.readingPaused, now: Self.t0).contains(.schedule(.probe, at: Self.t0 + Machine.probeInterval)))
        _ = machine.handle(.readingResumed(partialFrameBuffered: false), now: Self.t0)
        _ = machine.handle(.frameReceived(Self.request(1)), now: Self.t0)
        let paused = machine.handle(.readingPaused, now: Self.t0 + .seconds(1))
        #expect(paused.contains(.schedule(.probe, at: Self.t0 + .seconds(1) + Machine.probeInterval)))
        for k in 1...3 {
            let now = Self.t0 + .seconds(1) + Machine.probeInterval * Int64(k)
            let probe = machine.handle(.timerFired(.probe), now: now)
            let frames = Self.writes(probe)
            #expect(frames.count == 1 && frames.first?.type == .ping && frames.first?.flags.contains(.ack) == true)
            #expect(try frames.first.map { try PingMessage.decode($0.payload).opaque } == 0)
            #expect(probe.last == .schedule(.probe, at: now + Machine.probeInterval))
            _ = machine.handle(.outputWritten(bytes: Wire.frameHeaderSize), now: now)  // the socket took it
        }
        let resumed = machine.handle(.readingResumed(partialFrameBuffered: false), now: Self.t0 + .seconds(2))
        #expect(resumed.contains(.cancelTimer(.probe)))
        #expect(machine.armedTimers[.probe] == nil)
    }

    @Test func keepaliveStopsWithoutCalls() {
        var machine = Self.open()
        _ = machine.handle(.frameReceived(Self.request(1)), now: Self.t0)
        _ = machine.handle(.frameReceived(Frame(type: .cancel, streamID: 1, payload: ByteBuffer())), now: Self.t0)
        #expect(machine.handle(.timerFired(.keepalive), now: Self.t0 + .seconds(30)).isEmpty)
        #expect(machine.armedTimers[.keepalive] == nil)
    }

    @Test func idleTimerWaitsForCallsAndThenClosesWithGoAwayOK() throws {
        var machine = Self.open()
        _ = machine.handle(.frameReceived(Self.request(1)), now: Self.t0 + .seconds(10))
        // A call in flight is not idleness: the check moves one period on.
        #expect(machine.handle(.timerFired(.idle), now: Self.t0 + .seconds(60)) == [.schedule(.idle, at: Self.t0 + .seconds(120))])
        let payload = CallResponse(header: ResponseHeader(), status: CallStatus(code: .ok, message: "")).encoded()
        _ = machine.handle(.callFinished(streamID: 1, response: payload), now: Self.t0 + .seconds(100))
        // Not idle for long enough yet: re-armed for 60 s after the call ended.
        #expect(machine.handle(.timerFired(.idle), now: Self.t0 + .seconds(120)) == [.schedule(.idle, at: Self.t0 + .seconds(160))])
        let actions = machine.handle(.timerFired(.idle), now: Self.t0 + .seconds(160))
        let goAway = try #require(try Self.goAway(actions))
        #expect(goAway.status.code == .ok && goAway.status.message == "idle timeout")
        #expect(goAway.lastStreamID == 1)
    }

    @Test func drainSendsGoAwayRefusesNewCallsAndClosesAfterTheLastOne() throws {
        var machine = Self.open()
        _ = machine.handle(.frameReceived(Self.request(1)), now: Self.t0)
        let drain = machine.handle(.shutdownRequested, now: Self.t0)
        let goAway = try #require(try Self.goAway(drain))
        #expect(goAway.status.code == .ok && goAway.lastStreamID == 1)
        #expect(drain.last == .schedule(.drain, at: Self.t0 + .seconds(30)))
        let late = machine.handle(.frameReceived(Self.request(3)), now: Self.t0)
        #expect(try CallResponse.decode(try #require(Self.writes(late).first).payload).status.code == .unavailable)
        let payload = CallResponse(header: ResponseHeader(), status: CallStatus(code: .ok, message: "")).encoded()
        let finished = machine.handle(.callFinished(streamID: 1, response: payload), now: Self.t0 + .seconds(1))
        #expect(finished.last == .close)
    }

    @Test func drainTimeoutClosesWithCallsStillRunning() {
        var machine = Self.open()
        _ = machine.handle(.frameReceived(Self.request(1)), now: Self.t0)
        _ = machine.handle(.shutdownRequested, now: Self.t0)
        #expect(machine.handle(.timerFired(.drain), now: Self.t0 + .seconds(30)).last == .close)
        // The calls are cancelled when the channel goes inactive, with every timer.
        let inactive = machine.handle(.channelInactive, now: Self.t0 + .seconds(30))
        #expect(inactive.contains(.cancelCall(streamID: 1)))
        #expect(inactive.contains(.cancelTimer(.keepalive)))
        #expect(inactive.contains(.failDataWriters))
        #expect(machine.armedTimers.isEmpty)
    }

    @Test func drainBeforeThePrefaceOrWithoutCallsClosesAtOnce() {
        var fresh = Machine(configuration: Self.configuration())
        _ = fresh.handle(.started, now: Self.t0)
        #expect(fresh.handle(.shutdownRequested, now: Self.t0) == [.close])
        var idle = Self.open()
        #expect(idle.handle(.shutdownRequested, now: Self.t0).last == .close)
    }

    @Test func writabilityDecidesWhetherDataWritersWaitAndTheBoundCloses() {
        var machine = Self.open()
        _ = machine.handle(.frameReceived(Self.request(1)), now: Self.t0)
        #expect(machine.canSendData(on: 1) && !machine.canSendData(on: 3))
        #expect(!machine.dataWritersMustWait)
        _ = machine.handle(.writabilityChanged(isWritable: false), now: Self.t0)
        #expect(machine.dataWritersMustWait)
        #expect(machine.handle(.writabilityChanged(isWritable: true), now: Self.t0) == [.resumeDataWriters])
        // At the bound nothing happens; beyond it the peer is not reading.
        #expect(machine.handle(.outboundBuffered(bytes: 1000), now: Self.t0).isEmpty)
        #expect(machine.handle(.outboundBuffered(bytes: 1001), now: Self.t0).last == .close)
        #expect(!machine.canSendData(on: 1))
    }

    @Test func framingErrorsMapToTheirStatus() throws {
        var wrongMagic = Machine(configuration: Self.configuration())
        _ = wrongMagic.handle(.started, now: Self.t0)
        #expect(wrongMagic.handle(.framingFailed(.badPreface(firstBytes: [0x47])), now: Self.t0).last == .close)
        var version = Machine(configuration: Self.configuration())
        #expect(try Self.goAway(version.handle(.framingFailed(.unsupportedVersion(2)), now: Self.t0))?.status.code == .unimplemented)
        var large = Self.open()
        #expect(try Self.goAway(large.handle(.framingFailed(.payloadTooLarge(length: 5, limit: 4)), now: Self.t0))?.status.code
            == .resourceExhausted)
    }

    @Test func clientPingsAreAnsweredAndClientOnlyFramesAreChecked() throws {
        var machine = Self.open()
        let ping = Frame(type: .ping, streamID: 0, payload: PingMessage(opaque: 99).encoded())
        #expect(machine.handle(.frameReceived(ping), now: Self.t0) == [.write(Frame(type: .ping, flags: .ack, streamID: 0, payload: ping.payload))])
        var wrongStream = Self.open()
        #expect(try Self.goAway(wrongStream.handle(.frameReceived(Frame(type: .ping, streamID: 1, payload: ByteBuffer())), now: Self.t0))?
            .status.code == .invalidArgument)
        var data = Self.open()
        #expect(try Self.goAway(data.handle(.frameReceived(Frame(type: .data, streamID: 1, payload: ByteBuffer())), now: Self.t0))?
            .status.code == .invalidArgument)
        var unknown = Self.open()
        #expect(unknown.handle(.frameReceived(Frame(type: FrameType(rawValue: 0x42), streamID: 9, payload: ByteBuffer())), now: Self.t0).isEmpty)
    }
}
