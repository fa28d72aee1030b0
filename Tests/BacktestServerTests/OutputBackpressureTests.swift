import BacktestCore
import BacktestProtocol
import NIOCore
import NIOEmbedded
import Testing

@testable import BacktestServer

/// Many streams on one connection, on an `EmbeddedChannel` with the loop's manual clock and a
/// socket the test reads at a chosen pace (`ThrottledSocket`): the output bound holds however
/// many streams write, PING overtakes queued DATA, a slow but steady reader is never dropped and
/// gets every message of every stream exactly once, in order, then the RESPONSE; a peer that
/// stops reading is still closed.
@Suite("Per-stream output backpressure on EmbeddedChannel", .offCooperativePool)
struct OutputBackpressureTests {
    /// Streaming calls that write numbered DATA frames as fast as the handler lets them (the next
    /// one once the previous write's future completed), then end with an OK RESPONSE.
    final class Producers {
        let connection: EmbeddedConnection
        let streams: [UInt32]
        let messages: Int
        let payloadBytes: Int
        private var sent: [UInt32: Int] = [:]
        private var waiting: Set<UInt32> = []
        private(set) var finished: Set<UInt32> = []

        init(_ connection: EmbeddedConnection, streams: [UInt32], messages: Int, payloadBytes: Int) {
            self.connection = connection
            self.streams = streams
            self.messages = messages
            self.payloadBytes = payloadBytes
        }

        /// Each stream that may write does, until none may.
        func run() {
            var progressed = true
            while progressed {
                progressed = false
                for id in streams where !waiting.contains(id) && !finished.contains(id) {
                    progressed = true
                    let index = sent[id, default: 0]
                    guard index < messages else {
                        finished.insert(id)
                        connection.finish(id)
                        continue
                    }
                    sent[id] = index + 1
                    var payload = ByteBuffer()
                    payload.writeInteger(UInt32(index))
                    payload.writeRepeatingByte(0x44, count: payloadBytes - 4)
                    waiting.insert(id)
                    connection.handler.writeData(id, payload).whenComplete { [self] _ in waiting.remove(id) }
                }
            }
        }
    }

    /// The client: records every stream's DATA indices and RESPONSE, answers every PING.
    struct Reader {
        var received: [UInt32: [UInt32]] = [:]
        var responses: [UInt32: StatusCode] = [:]
        var dataAfterResponse = 0
        var pingsAnswered = 0
        var order: [Frame] = []

        mutating func read(_ connection: EmbeddedConnection) throws {
            for frame in try connection.frames() {
                order.append(frame)
                switch frame.type {
                case .data:
                    if responses[frame.streamID] != nil { dataAfterResponse += 1 }
                    received[frame.streamID, default: []].append(frame.payload.getInteger(at: frame.payload.readerIndex, as: UInt32.self) ?? .max)
                case .response:
                    responses[frame.streamID] = try CallResponse.decode(frame.payload).status.code
                case .ping where !frame.flags.contains(.ack):
                    pingsAnswered += 1
                    try connection.send(Frame(type: .ping, flags: .ack, streamID: 0, payload: frame.payload))
                default:
                    break
                }
            }
        }
    }

    /// Runs producers and a reader taking `bytesPerTick` every `tick` until every stream ended
    /// (or the connection closed); returns the reader.
    static func run(_ connection: EmbeddedConnection, _ socket: ThrottledSocket, _ producers: Producers,
                    bytesPerTick: Int, tick: TimeAmount, maxTicks: Int) throws -> Reader {
        var reader = Reader()
        producers.run()
        var ticks = 0
        while connection.isOpen, reader.responses.count < producers.streams.count, ticks < maxTicks {
            connection.advance(by: tick)
            socket.read(bytes: bytesPerTick)
            try reader.read(connection)
            producers.run()
            ticks += 1
        }
        return reader
    }

    @Test func sixtyFourStreamsAndASteadyReaderKeepTheBoundAndGetEveryMessageOnceThenTheResponse() throws {
        let bound = 256 * 1024
        let socket = ThrottledSocket()
        let connection = try EmbeddedConnection({
            $0.maxOutboundBuffer = bound; $0.keepaliveInterval = .seconds(1); $0.maxConcurrentStreams = 256
        }, throttle: socket)
        try connection.sendPreface()
        let streams = (0..<64).map { UInt32(2 * $0 + 1) }
        for id in streams { try connection.request(id) }
        let producers = Producers(connection, streams: streams, messages: 20, payloadBytes: 8 * 1024)
        // 5 MB/s: 50 KB every 10 ms; 64 × 20 × 8 KiB = 10.5 MB takes about two simulated seconds,
        // with a PING every simulated second.
        let reader = try Self.run(connection, socket, producers, bytesPerTick: 50_000, tick: .milliseconds(10), maxTicks: 10_000)
        #expect(connection.isOpen)
        #expect(socket.maxHeldBytes <= bound)
        #expect(reader.pingsAnswered >= 1)
        for id in streams {
            #expect(reader.received[id] == (0..<20).map(UInt32.init), "stream \(id)")
            #expect(reader.responses[id] == .ok, "stream \(id)")
        }
        #expect(reader.dataAfterResponse == 0)
        // Streams take turns: every stream's first message arrived before any stream's last.
        let data = reader.order.filter { $0.type == .data }
        let lastFirst = streams.map { id in data.firstIndex { $0.streamID == id }! }.max()!
        let firstLast = streams.map { id in data.lastIndex { $0.streamID == id }! }.min()!
        #expect(lastFirst < firstLast)
    }

    @Test func aSixtyKilobytePerSecondReaderAnsweringPingsIsNeverDropped() throws {
        // The case: a PING behind ~4 MiB of output, which takes 70 s at this pace, longer
        // than the 30 s keepalive; the reader keeps taking bytes, so the keepalive waits for it.
        let socket = ThrottledSocket()
        let connection = try EmbeddedConnection({ $0.keepaliveInterval = .seconds(30); $0.maxOutboundBuffer = 4 << 20 },
                                                throttle: socket)
        try connection.sendPreface()
        try connection.request(1)
        let producers = Producers(connection, streams: [1], messages: 400, payloadBytes: 20_000)
        var reader = try Self.run(connection, socket, producers, bytesPerTick: 6_000, tick: .milliseconds(100), maxTicks: 3_000)
        #expect(connection.isOpen)
        socket.read(bytes: 1 << 20)  // a PING written after the RESPONSE
        try reader.read(connection)
        #expect(reader.received[1] == (0..<400).map(UInt32.init))
        #expect(reader.responses[1] == .ok)
        #expect(reader.pingsAnswered >= 1)
    }

    @Test func aPingOvertakesQueuedData() throws {
        let bound = 64 * 1024
        let socket = ThrottledSocket()
        let connection = try EmbeddedConnection({ $0.maxOutboundBuffer = bound; $0.keepaliveInterval = .seconds(1) }, throttle: socket)
        try connection.sendPreface()
        let streams: [UInt32] = [1, 3, 5, 7]
        for id in streams { try connection.request(id) }
        let producers = Producers(connection, streams: streams, messages: 8, payloadBytes: 8 * 1024)
        producers.run()  // the peer reads nothing yet: the bound fills, the rest waits in queues
        #expect(!connection.handler.stateMachine.outputQueues.isEmpty)
        connection.advance(by: .seconds(1))  // keepalive PING
        var reader = Reader()
        for _ in 0..<3 {
            socket.read(bytes: 1 << 30)
            try reader.read(connection)
        }
        let ping = try #require(reader.order.firstIndex { $0.type == .ping })
        let dataBefore = reader.order[..<ping].filter { $0.type == .data }.count
        #expect(dataBefore * (8 * 1024 + Wire.frameHeaderSize) <= bound)
        #expect(reader.order[ping...].contains { $0.type == .data }, "DATA queued when the PING went out came after it")
        #expect(socket.maxHeldBytes <= bound)
    }

    @Test func aPeerThatStopsReadingIsClosedAfterTheKeepaliveInterval() throws {
        let bound = 64 * 1024
        let connection = try EmbeddedConnection({ $0.maxOutboundBuffer = bound; $0.keepaliveInterval = .seconds(1) },
                                                stalledOutput: true)
        try connection.sendPreface()
        let streams: [UInt32] = [1, 3, 5, 7]
        for id in streams { try connection.request(id) }
        let producers = Producers(connection, streams: streams, messages: 100, payloadBytes: 8 * 1024)
        producers.run()
        #expect(try connection.channel.getOption(.bufferedWritableBytes).wait() <= bound)
        connection.advance(by: .seconds(1))  // PING, behind the output the peer does not take
        #expect(connection.isOpen)
        connection.advance(by: .seconds(1))
        #expect(!connection.isOpen)
        #expect(connection.calls.cancelled == Set(streams))
    }

    @Test func withoutKeepaliveAPeerThatStopsReadingIsClosedAfterTheIdlePeriod() throws {
        let connection = try EmbeddedConnection({
            $0.maxOutboundBuffer = 64 * 1024; $0.keepaliveInterval = .zero; $0.idleTimeout = .seconds(60)
        }, stalledOutput: true)
        try connection.sendPreface()
        try connection.request(1)
        let producers = Producers(connection, streams: [1], messages: 100, payloadBytes: 8 * 1024)
        producers.run()
        // The call in flight is not idleness, but a whole period in which the peer took nothing
        // of the output waiting for it is.
        connection.advance(by: .seconds(60) - .nanoseconds(1))
        #expect(connection.isOpen)
        connection.advance(by: .nanoseconds(1))
        #expect(!connection.isOpen)
        #expect(connection.calls.cancelled == [1])
    }

    /// A streaming call waiting for room while the peer reads nothing must not outlive a CANCEL:
    /// its writer fails with CancellationError at once (the call's work then stops), rather than
    /// waiting for a read that never comes.
    @Test func aWriterWaitingForRoomFailsWhenTheClientCancelsTheStream() throws {
        let socket = ThrottledSocket()
        let connection = try EmbeddedConnection({ $0.maxOutboundBuffer = 64 * 1024 }, throttle: socket)
        try connection.sendPreface()
        try connection.request(1)
        var payload = ByteBuffer()
        payload.writeRepeatingByte(0x44, count: 16 * 1024)
        final class Outcome: @unchecked Sendable { var result: Result<Void, any Error>? }
        var waiting: Outcome?
        // Fill the bound: the peer reads nothing, so a writer ends up waiting.
        for _ in 0..<64 {
            let outcome = Outcome()
            connection.handler.writeData(1, payload).whenComplete { outcome.result = $0 }
            if outcome.result == nil { waiting = outcome; break }
        }
        let writer = try #require(waiting, "a writer waits for room")
        try connection.send(Frame(type: .cancel, streamID: 1, payload: ByteBuffer()))
        let result = try #require(writer.result, "the waiting writer was not resumed by the CANCEL")
        #expect(throws: CancellationError.self) { try result.get() }
        #expect(connection.calls.cancelled.contains(1))
    }
}
