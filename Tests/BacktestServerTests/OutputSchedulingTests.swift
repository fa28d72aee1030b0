import BacktestCore
import BacktestProtocol
import NIOCore
import Testing

@testable import BacktestServer

/// The machine's output scheduling as a value: per-stream queues within the connection's output
/// bound, streams in turn, control frames ahead, and a keepalive that tells a slow reader from
/// one that stopped.
@Suite("Connection output scheduling")
struct OutputSchedulingTests {
    typealias Machine = ConnectionStateMachine
    static let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)

    static func configuration() -> ServerConfiguration {
        var configuration = ConnectionStateMachineTests.configuration()
        configuration.maxConcurrentStreams = 8
        return configuration
    }

    /// Open, with SETTINGS already taken by the peer, and `streams` calls in flight.
    static func open(streams: [UInt32]) -> Machine {
        var machine = Machine(configuration: configuration(), pingOpaque: 7)
        _ = machine.handle(.started, now: t0)
        let settings = ConnectionStateMachineTests.writes(machine.handle(.prefaceReceived, now: t0))
        _ = machine.handle(.outputWritten(bytes: settings.map(size).reduce(0, +)), now: t0)
        for id in streams { _ = machine.handle(.frameReceived(ConnectionStateMachineTests.request(id)), now: t0) }
        return machine
    }

    static func size(_ frame: Frame) -> Int { Wire.frameHeaderSize + frame.payload.readableBytes }

    static func data(_ bytes: Int) -> ByteBuffer { ByteBuffer(repeating: 1, count: bytes) }

    @Test func streamsTakeTurnsWithinTheOutputBound() {
        var machine = Self.open(streams: [1, 3])
        // Bound 1000 less the control reserve (1/8): 875 bytes of DATA and RESPONSEs.
        #expect(machine.outputLimitForStreams == 875)
        var written: [UInt32] = []
        func ready(_ id: UInt32) {
            written += ConnectionStateMachineTests.writes(machine.handle(.dataReady(streamID: id, payload: Self.data(390)), now: Self.t0))
                .map(\.streamID)
            #expect(machine.bufferedOutputBytes <= 875)
        }
        ready(1); ready(3)  // 400 + 400 bytes: both go out
        #expect(written == [1, 3])
        #expect(!machine.dataWriterMustWait(on: 1))
        ready(1); ready(1); ready(3)  // no room: queued
        #expect(written == [1, 3])
        #expect(machine.dataWriterMustWait(on: 1) && machine.dataWriterMustWait(on: 3))
        // As the peer reads, one frame goes per stream in turn (1 was queued first).
        for _ in 0..<3 {
            let actions = machine.handle(.outputWritten(bytes: 400), now: Self.t0)
            written += ConnectionStateMachineTests.writes(actions).map(\.streamID)
            #expect(machine.bufferedOutputBytes <= 875)
        }
        #expect(written == [1, 3, 1, 3, 1])
        #expect(!machine.dataWriterMustWait(on: 3))
        #expect(machine.outputQueues.isEmpty)
    }

    @Test func aStreamsResponseFollowsItsQueuedDataAndAWaitingWriterIsResumed() {
        var machine = Self.open(streams: [1, 3])
        _ = machine.handle(.dataReady(streamID: 1, payload: Self.data(800)), now: Self.t0)
        _ = machine.handle(.dataReady(streamID: 3, payload: Self.data(100)), now: Self.t0)  // queued
        #expect(machine.dataWriterMustWait(on: 3))
        let ok = CallResponse(header: ResponseHeader(), status: CallStatus(code: .ok, message: "")).encoded()
        #expect(ConnectionStateMachineTests.writes(machine.handle(.callFinished(streamID: 3, response: ok), now: Self.t0)).isEmpty)
        let actions = machine.handle(.outputWritten(bytes: 810), now: Self.t0)
        #expect(ConnectionStateMachineTests.writes(actions).map(\.type) == [.data, .response])
        var other = Self.open(streams: [1, 3])
        _ = other.handle(.dataReady(streamID: 1, payload: Self.data(800)), now: Self.t0)
        _ = other.handle(.dataReady(streamID: 3, payload: Self.data(100)), now: Self.t0)
        #expect(other.handle(.outputWritten(bytes: 810), now: Self.t0).contains(.resumeDataWriters))
    }

    @Test func controlFramesGoAheadOfQueuedData() throws {
        var machine = Self.open(streams: [1, 3])
        _ = machine.handle(.dataReady(streamID: 1, payload: Self.data(800)), now: Self.t0)
        _ = machine.handle(.dataReady(streamID: 3, payload: Self.data(800)), now: Self.t0)  // queued
        let ping = ConnectionStateMachineTests.writes(machine.handle(.timerFired(.keepalive), now: Self.t0 + .seconds(30)))
        #expect(ping.map(\.type) == [.ping])
        #expect(machine.outputQueues[3]?.count == 1)
        let clientPing = Frame(type: .ping, streamID: 0, payload: PingMessage(opaque: 1).encoded())
        #expect(ConnectionStateMachineTests.writes(machine.handle(.frameReceived(clientPing), now: Self.t0)).map(\.flags) == [.ack])
        let goAway = ConnectionStateMachineTests.writes(machine.handle(.shutdownRequested, now: Self.t0))
        #expect(goAway.map(\.type) == [.goAway])
        #expect(machine.phase == .draining)
        // Draining: the last call's queued frames still go out before the close.
        let ok = CallResponse(header: ResponseHeader(), status: CallStatus(code: .ok, message: "")).encoded()
        _ = machine.handle(.callFinished(streamID: 1, response: ok), now: Self.t0)
        #expect(!machine.handle(.callFinished(streamID: 3, response: ok), now: Self.t0).contains(.close))
        // Once the peer took everything, stream 3's DATA goes (its turn came first), then the
        // RESPONSEs in turn.
        let drained = machine.handle(.outputWritten(bytes: machine.bufferedOutputBytes), now: Self.t0)
        #expect(ConnectionStateMachineTests.writes(drained).map(\.streamID) == [3, 1, 3])
        #expect(ConnectionStateMachineTests.writes(drained).map(\.type) == [.data, .response, .response])
        #expect(drained.last == .close)
    }

    @Test func anUnansweredPingBehindOutputTheReaderIsTakingDoesNotClose() throws {
        var machine = Self.open(streams: [1, 3])
        _ = machine.handle(.dataReady(streamID: 1, payload: Self.data(800)), now: Self.t0)
        _ = machine.handle(.dataReady(streamID: 3, payload: Self.data(800)), now: Self.t0)
        _ = machine.handle(.timerFired(.keepalive), now: Self.t0 + .seconds(30))  // PING
        // The peer took part of a large frame (the channel's count) but not the PING yet.
        _ = machine.handle(.outputTaken(totalBytes: 200), now: Self.t0 + .seconds(45))
        let slow = machine.handle(.timerFired(.keepalive), now: Self.t0 + .seconds(60))
        #expect(slow == [.schedule(.keepalive, at: Self.t0 + .seconds(90))])
        _ = machine.handle(.outputWritten(bytes: 810), now: Self.t0 + .seconds(70))
        #expect(machine.handle(.timerFired(.keepalive), now: Self.t0 + .seconds(90)).last == .schedule(.keepalive, at: Self.t0 + .seconds(120)))
        // Nothing taken for a whole interval: the peer stopped reading.
        let stopped = machine.handle(.timerFired(.keepalive), now: Self.t0 + .seconds(120))
        #expect(try ConnectionStateMachineTests.goAway(stopped)?.status.code == .unavailable)
        #expect(stopped.last == .close)
    }

    @Test func aPeerHandedEverythingThatDoesNotAnswerIsClosed() throws {
        var machine = Self.open(streams: [1])
        let ping = ConnectionStateMachineTests.writes(machine.handle(.timerFired(.keepalive), now: Self.t0 + .seconds(30)))
        _ = machine.handle(.outputWritten(bytes: ping.map(Self.size).reduce(0, +)), now: Self.t0 + .seconds(30))
        let actions = machine.handle(.timerFired(.keepalive), now: Self.t0 + .seconds(60))
        #expect(try ConnectionStateMachineTests.goAway(actions)?.status.message == "keepalive PING not answered")
    }

    @Test func withoutKeepaliveTheIdleCheckClosesAPeerThatTakesNothing() {
        var configuration = Self.configuration()
        configuration.keepaliveInterval = .zero
        var machine = Machine(configuration: configuration)
        _ = machine.handle(.started, now: Self.t0)
        _ = machine.handle(.prefaceReceived, now: Self.t0)
        _ = machine.handle(.frameReceived(ConnectionStateMachineTests.request(1)), now: Self.t0)
        _ = machine.handle(.dataReady(streamID: 1, payload: Self.data(800)), now: Self.t0)
        _ = machine.handle(.dataReady(streamID: 1, payload: Self.data(800)), now: Self.t0)  // queued
        let ok = CallResponse(header: ResponseHeader(), status: CallStatus(code: .ok, message: "")).encoded()
        _ = machine.handle(.callFinished(streamID: 1, response: ok), now: Self.t0)
        // Frames still queued are not idleness while the peer takes output; one idle period in
        // which it took nothing is.
        _ = machine.handle(.outputTaken(totalBytes: 100), now: Self.t0 + .seconds(30))
        #expect(machine.handle(.timerFired(.idle), now: Self.t0 + .seconds(60)) == [.schedule(.idle, at: Self.t0 + .seconds(90))])
        #expect(machine.handle(.timerFired(.idle), now: Self.t0 + .seconds(90)).last == .close)
    }

    @Test func aFrameLargerThanTheBoundGoesAloneAndAPingAfterItIsNoOverflow() throws {
        var configuration = Self.configuration()
        configuration.maxFramePayload = 4096
        var machine = Machine(configuration: configuration)
        _ = machine.handle(.started, now: Self.t0)
        _ = machine.handle(.prefaceReceived, now: Self.t0)
        _ = machine.handle(.outputWritten(bytes: machine.bufferedOutputBytes), now: Self.t0)
        _ = machine.handle(.frameReceived(ConnectionStateMachineTests.request(1)), now: Self.t0)
        let big = ConnectionStateMachineTests.writes(machine.handle(.dataReady(streamID: 1, payload: Self.data(3000)), now: Self.t0))
        #expect(big.count == 1)  // alone, above the 1000-byte bound
        let ping = machine.handle(.timerFired(.keepalive), now: Self.t0 + .seconds(30))
        #expect(ConnectionStateMachineTests.writes(ping).map(\.type) == [.ping])
        #expect(!ping.contains(.close))
    }

    @Test func aResponseAboveTheFrameLimitBecomesAShortResourceExhausted() throws {
        var configuration = Self.configuration()
        configuration.maxFramePayload = 4096
        configuration.maxOutboundBuffer = 1 << 20
        var machine = Machine(configuration: configuration)
        _ = machine.handle(.started, now: Self.t0)
        _ = machine.handle(.prefaceReceived, now: Self.t0)
        _ = machine.handle(.frameReceived(ConnectionStateMachineTests.request(1)), now: Self.t0)
        let huge = CallResponse(header: ResponseHeader(requestID: String(repeating: "r", count: 5000)),
                                status: CallStatus(code: .ok, message: "")).encoded()
        let frame = try #require(ConnectionStateMachineTests.writes(machine.handle(.callFinished(streamID: 1, response: huge), now: Self.t0)).first)
        #expect(frame.payload.readableBytes <= 4096)
        let response = try CallResponse.decode(frame.payload)
        #expect(response.status.code == .resourceExhausted)
        #expect(response.header.requestID.isEmpty)
        #expect(response.status.message.count < 100)
    }

    @Test func aDeadlineEchoesOnlyABoundedRequestID() throws {
        var machine = Self.open(streams: [1, 3])
        let long = String(repeating: "x", count: EchoBounds.maxRequestIDBytes + 1)
        _ = machine.handle(.deadlineKnown(streamID: 1, deadline: Self.t0 + .seconds(1), requestID: long, timeout: .seconds(1)), now: Self.t0)
        let exact = String(repeating: "y", count: EchoBounds.maxRequestIDBytes)
        _ = machine.handle(.deadlineKnown(streamID: 3, deadline: Self.t0 + .seconds(1), requestID: exact, timeout: .seconds(1)), now: Self.t0)
        let first = try #require(ConnectionStateMachineTests.writes(machine.handle(.timerFired(.deadline(streamID: 1)), now: Self.t0 + .seconds(1))).first)
        #expect(try CallResponse.decode(first.payload).header.requestID == "")
        let second = try #require(ConnectionStateMachineTests.writes(machine.handle(.timerFired(.deadline(streamID: 3)), now: Self.t0 + .seconds(1))).first)
        #expect(try CallResponse.decode(second.payload).header.requestID == exact)
    }
}
