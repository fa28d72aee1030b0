import BacktestProtocol
import BacktestRawClient
@testable import BacktestServer
import NIOConcurrencyHelpers
import NIOCore
import Testing

/// Issue 12: incoming frames are under one server-wide budget. The tester's cases: 100
/// connections each holding a 4 MiB frame minus 10 bytes (RSS 313 -> 730 MB until the frame
/// timeout), and 100 complete 3.6 MB requests queued on one connection (1.1 GB). A frame that
/// does not fit makes its connection stop reading; nothing is refused and nobody's data is lost.
// The time limit guards against a hang, not a timing: beside other work loading this 2-core
// machine 3x (load average 7) with the whole suite running, these real-socket tests took over a
// minute to be served (the suite's tasks and the servers' share one cooperative pool).
@Suite("Inbound memory budget", .timeLimit(.minutes(3)))
struct InboundMemoryBudgetTests {
    /// Collects grants (they may come on any thread).
    final class Grants: Sendable {
        private let holds = NIOLockedValueBox<[String: InboundMemoryBudget.Hold]>([:])
        func callback(_ name: String) -> @Sendable (InboundMemoryBudget.Hold) -> Void {
            { hold in self.holds.withLockedValue { $0[name] = hold } }
        }
        func hold(_ name: String) -> InboundMemoryBudget.Hold? { holds.withLockedValue { $0[name] } }
        var names: Set<String> { holds.withLockedValue { Set($0.keys) } }
    }

    static func granted(_ reservation: InboundMemoryBudget.Reservation) -> InboundMemoryBudget.Hold? {
        if case .granted(let hold) = reservation { return hold }
        return nil
    }

    static func waitID(_ reservation: InboundMemoryBudget.Reservation) -> UInt64? {
        if case .waiting(let id) = reservation { return id }
        return nil
    }

    // MARK: The budget

    @Test func reservationsWaitInArrivalOrderWhileTheBudgetIsTaken() throws {
        let budget = InboundMemoryBudget(bytes: 100, largestFrame: 100)
        let (a, b, c) = (budget.account(), budget.account(), budget.account())
        let grants = Grants()
        let first = try #require(Self.granted(a.reserve(60, granted: grants.callback("a"))))
        #expect(Self.waitID(b.reserve(50, granted: grants.callback("b"))) != nil)
        // A small one behind it waits too, though it would fit: a large frame is not overtaken.
        #expect(Self.waitID(c.reserve(10, granted: grants.callback("c"))) != nil)
        #expect(budget.usage == (60, 2))
        first.release()
        #expect(grants.names == ["b", "c"])
        #expect(budget.usage == (60, 0))
        grants.hold("b")?.release()
        grants.hold("c")?.release()
        #expect(budget.usage == (0, 0))
    }

    @Test func aFrameLargerThanTheWholeBudgetIsReceivedAlone() throws {
        let budget = InboundMemoryBudget(bytes: 100, largestFrame: 500)
        let (a, b) = (budget.account(), budget.account())
        let grants = Grants()
        let large = try #require(Self.granted(a.reserve(500, granted: grants.callback("a"))))
        // Its own reservation does not stop its reading: it is the only holder (it did, and the
        // frame was never received; a tester's 1.1 MB frame with a 1 MiB budget).
        #expect(!a.mustWait)
        #expect(Self.waitID(b.reserve(1, granted: grants.callback("b"))) != nil)
        large.release()
        #expect(grants.names == ["b"])
    }

    /// One connection may hold at most an eighth of the budget (or one frame): it cannot take
    /// the whole budget, and its waiting does not hold up other connections.
    @Test func aConnectionOverItsShareWaitsWithoutHoldingUpOthers() throws {
        let budget = InboundMemoryBudget(bytes: 800, largestFrame: 50)
        #expect(budget.perConnection == 100)
        let (greedy, other) = (budget.account(), budget.account())
        let grants = Grants()
        let first = try #require(Self.granted(greedy.reserve(80, granted: grants.callback("first"))))
        #expect(Self.waitID(greedy.reserve(40, granted: grants.callback("greedy"))) != nil)
        // The other connection is behind it in line, but the budget has room for it.
        let theirs = try #require(Self.granted(other.reserve(40, granted: grants.callback("other"))) ?? grants.hold("other"))
        #expect(theirs.amount == 40)
        first.release()
        #expect(grants.names == ["greedy"])
    }

    @Test func framesThatArrivedWholeAreCountedAndThenTheConnectionWaits() {
        let budget = InboundMemoryBudget(bytes: 100, largestFrame: 10)
        let (a, b) = (budget.account(), budget.account())
        let counted = a.count(120)
        #expect(budget.usage.reserved == 120)
        #expect(a.mustWait, "over the budget while holding bytes")
        #expect(!b.mustWait, "a connection holding nothing reads on (its small frames are not counted)")
        let grants = Grants()
        #expect(Self.waitID(a.reserve(0, granted: grants.callback("a"))) != nil)
        counted.release()
        #expect(grants.hold("a")?.amount == 0)
        #expect(!a.mustWait)
    }

    @Test func aWithdrawnWaitLetsTheNextOneIn() throws {
        let budget = InboundMemoryBudget(bytes: 100, largestFrame: 100)
        let (a, b, c) = (budget.account(), budget.account(), budget.account())
        let grants = Grants()
        let held = try #require(Self.granted(a.reserve(50, granted: grants.callback("a"))))
        let id = try #require(Self.waitID(b.reserve(90, granted: grants.callback("b"))))
        #expect(Self.waitID(c.reserve(40, granted: grants.callback("c"))) != nil)
        #expect(b.cancelWait(id))
        #expect(grants.names == ["c"])
        #expect(!b.cancelWait(id), "withdrawn once")
        held.release()
        grants.hold("c")?.release()
        #expect(budget.usage == (0, 0))
    }

    @Test func aHoldGivesItsBytesBackOnceEvenWhenDropped() throws {
        let budget = InboundMemoryBudget(bytes: 100, largestFrame: 100)
        let account = budget.account()
        do {
            let hold = account.count(30)
            hold.release()
            hold.release()
            #expect(budget.usage.reserved == 0)
        }
        do { _ = account.count(30) }
        #expect(budget.usage.reserved == 0, "a hold let go of without release gives its bytes back")
    }

    // MARK: A connection (EmbeddedChannel, manual clock)

    static func header(of frame: Frame) -> ByteBuffer {
        var header = ByteBuffer()
        header.writeMultipleIntegers(UInt32(frame.payload.readableBytes), frame.streamID, frame.type.rawValue, frame.flags.rawValue,
                                     endianness: .big)
        return header
    }

    static func request(_ id: UInt32, bytes: Int) -> Frame {
        Frame(type: .request, streamID: id, payload: ByteBuffer(repeating: 0x5A, count: bytes))
    }

    /// Sends the frame's header and the first `part` bytes of its payload.
    static func sendStart(of frame: Frame, part: Int, on connection: EmbeddedConnection) throws {
        var start = header(of: frame)
        start.writeImmutableBuffer(frame.payload.getSlice(at: frame.payload.readerIndex, length: part)!)
        try connection.send(start)
    }

    static func sendRest(of frame: Frame, after part: Int, on connection: EmbeddedConnection) throws {
        try connection.send(frame.payload.getSlice(at: frame.payload.readerIndex + part, length: frame.payload.readableBytes - part)!)
    }

    static func configure(_ configuration: inout ServerConfiguration) {
        configuration.maxFramePayload = 1 << 20
        configuration.inboundMemoryBudget = 1 << 20
        configuration.frameTimeout = .milliseconds(100)
        configuration.keepaliveInterval = .milliseconds(100)
    }

    /// Two connections after their handshake, sharing the budget of `configure` (1 MiB by default).
    static func twoConnectionsSharingABudget(
        _ configure: (inout ServerConfiguration) -> Void = Self.configure
    ) throws -> (InboundMemoryBudget, EmbeddedConnection, EmbeddedConnection) {
        var configuration = ServerConfiguration()
        configure(&configuration)
        let budget = InboundMemoryBudget(configuration)
        let first = try EmbeddedConnection(configure, inbound: budget)
        let second = try EmbeddedConnection(configure, inbound: budget)
        for connection in [first, second] { try connection.handshake() }
        return (budget, first, second)
    }

    /// Two connections share a 1 MiB budget; each starts a 600 KiB REQUEST. The second stops
    /// reading (its `read` is withheld) until the first's payload is decoded; meanwhile its frame
    /// timer does not run, and its unanswered PING does not close it.
    @Test func aFrameThatDoesNotFitStopsItsConnectionUntilItDoes() throws {
        let (budget, first, second) = try Self.twoConnectionsSharingABudget()
        // A small call on the second connection, so its keepalive PINGs run.
        try second.request(1)
        #expect(second.calls.started == [1])

        let big = Self.request(3, bytes: 600 << 10)
        try Self.sendStart(of: big, part: 1000, on: first)
        #expect(budget.usage == (Wire.frameHeaderSize + (600 << 10), 0))
        try Self.sendStart(of: Self.request(3, bytes: 600 << 10), part: 1000, on: second)
        #expect(budget.usage.waiting == 1)
        #expect(second.handler.isReadingPaused)
        let readsBefore = second.readCounter.reads
        second.channel.read()
        #expect(second.readCounter.reads == readsBefore, "reading is paused")
        first.channel.read()

        // Longer than the frame timeout and two keepalive intervals: the server is the one not reading.
        second.advance(by: .milliseconds(350))
        #expect(second.isOpen)
        _ = try second.frames()

        // The first frame arrives whole; its call holds the bytes until it has decoded them.
        try Self.sendRest(of: big, after: 1000, on: first)
        #expect(first.calls.started == [3])
        #expect(budget.usage.waiting == 1)
        first.calls.received[3]?.release()
        second.loop.run()
        #expect(budget.usage == (Wire.frameHeaderSize + (600 << 10), 0))
        #expect(!second.handler.isReadingPaused)
        #expect(second.readCounter.reads == readsBefore + 1, "the withheld read goes to the socket")

        // Its frame time runs again from the resume: a client that now stalls is closed.
        second.advance(by: .milliseconds(100))
        let goAway = try #require(try second.goAway())
        #expect(goAway.status.code == .deadlineExceeded)
        #expect(!second.isOpen)
        second.loop.run()
        #expect(budget.usage == (0, 0), "the closed connection gave back what it held")
    }

    /// Whole frames that arrive in one read are counted; a connection holding more than its
    /// share stops reading until its calls have decoded them.
    @Test func wholeFramesOverTheConnectionsShareStopItsReading() throws {
        let configure: (inout ServerConfiguration) -> Void = {
            $0.maxFramePayload = 64 << 10
            $0.inboundMemoryBudget = 1 << 20
        }
        var configuration = ServerConfiguration()
        configure(&configuration)
        let budget = InboundMemoryBudget(configuration)
        #expect(budget.perConnection == 128 << 10)
        let connection = try EmbeddedConnection(configure, inbound: budget)
        try connection.handshake()
        var three = ByteBuffer()
        for id: UInt32 in [1, 3, 5] { FrameEncoder.write(Self.request(id, bytes: 50 << 10), into: &three) }
        try connection.send(three)
        #expect(connection.calls.started == [1, 3, 5])
        #expect(budget.usage.reserved == 3 * (Wire.frameHeaderSize + (50 << 10)))
        #expect(connection.handler.isReadingPaused)
        connection.calls.received[1]?.release()
        connection.loop.run()
        #expect(!connection.handler.isReadingPaused)
        // Small frames are not counted.
        try connection.request(7, payloadSize: InboundMemoryBudget.smallFrameBytes)
        #expect(budget.usage.reserved == 2 * (Wire.frameHeaderSize + (50 << 10)))
    }

    @Test func aConnectionClosedWhileItWaitsWithdrawsItsWait() throws {
        let (budget, first, second) = try Self.twoConnectionsSharingABudget()
        try Self.sendStart(of: Self.request(1, bytes: 900 << 10), part: 10, on: first)
        try Self.sendStart(of: Self.request(1, bytes: 900 << 10), part: 10, on: second)
        #expect(budget.usage.waiting == 1)
        _ = try second.channel.close().wait()
        #expect(budget.usage.waiting == 0)
        _ = try first.channel.close().wait()
        #expect(budget.usage == (0, 0))
    }

    /// Two connections sharing a 1 MiB budget, with a stall time of 200 ms and a frame timeout
    /// long enough not to interfere.
    static func twoConnectionsWithAStallTime() throws -> (InboundMemoryBudget, EmbeddedConnection, EmbeddedConnection) {
        try twoConnectionsSharingABudget {
            Self.configure(&$0)
            $0.frameTimeout = .seconds(10)
            $0.keepaliveInterval = .zero
            $0.inboundStallTimeout = .milliseconds(200)
        }
    }

    /// The tester's 100 connections stalling in 4 MiB frames held up another client's large
    /// request for 58 s, each holding its room until its frame timed out. While others wait for
    /// room, a connection holding room whose frame gets no byte for the stall time is closed
    /// (RESOURCE_EXHAUSTED), and the waiting frame gets the room; bytes arriving restart the clock.
    @Test func aStalledFrameHoldingRoomOthersWaitForIsClosedAfterTheStallTime() throws {
        let (budget, first, second) = try Self.twoConnectionsWithAStallTime()
        let stalled = Self.request(1, bytes: 600 << 10)
        try Self.sendStart(of: stalled, part: 1000, on: first)
        try Self.sendStart(of: Self.request(1, bytes: 600 << 10), part: 1000, on: second)
        #expect(budget.usage.waiting == 1)
        #expect(second.handler.isReadingPaused)
        // Bytes keep coming at 150 ms: not stalled.
        first.advance(by: .milliseconds(150))
        try first.send(stalled.payload.getSlice(at: stalled.payload.readerIndex + 1000, length: 1000)!)
        first.advance(by: .milliseconds(150))
        #expect(first.isOpen)
        // Then none for 200 ms.
        first.advance(by: .milliseconds(60))
        let goAway = try #require(try first.goAway())
        #expect(goAway.status.code == .resourceExhausted)
        #expect(goAway.status.message == "no byte of the frame being received for 200 ms while it held room in the server's inbound memory that other connections wait for")
        #expect(!first.isOpen)
        second.loop.run()
        #expect(!second.handler.isReadingPaused, "the waiting frame got the room")
        #expect(budget.usage == (Wire.frameHeaderSize + (600 << 10), 0))
    }

    /// With nobody waiting for room a slow client may pause as long as the frame timeout allows,
    /// and a connection that has not been granted room is never closed for stalling.
    @Test func aStalledFrameIsLeftAloneWhileNobodyWaits() throws {
        let (budget, first, second) = try Self.twoConnectionsWithAStallTime()
        try Self.sendStart(of: Self.request(1, bytes: 600 << 10), part: 1000, on: first)
        first.advance(by: .seconds(1))
        #expect(first.isOpen)
        // Now the second waits: the first's next check, within one stall time, closes it.
        try Self.sendStart(of: Self.request(1, bytes: 600 << 10), part: 1000, on: second)
        #expect(budget.usage.waiting == 1)
        second.advance(by: .seconds(1))
        #expect(second.isOpen, "it waits for the room; its stall is not its own")
        first.advance(by: .milliseconds(200))
        #expect(try first.goAway()?.status.code == .resourceExhausted)
        second.loop.run()
        #expect(!second.handler.isReadingPaused)
    }

    // MARK: Real sockets

    /// Polls the server's inbound usage (30 s at most: the whole suite loads the machine),
    /// failing with what was awaited and the last usage seen.
    static func poll(_ what: String, _ server: BacktestServer,
                     until condition: @escaping ((reserved: Int, waiting: Int)) -> Bool) async throws {
        do {
            try await BacktestServerTests.poll(timeout: .seconds(30)) { condition(server.inboundUsage) }
        } catch {
            throw TestFailure("\(what): not within 30 s (inbound usage \(server.inboundUsage))")
        }
    }

    /// The tester's first case, scaled down: 10 connections each start a 1 MiB frame under a
    /// 4 MiB budget. Three are received; the others wait unread. Once every client sends the
    /// rest, every call is answered.
    @Test func manyConnectionsStartingLargeFramesAreReceivedInTurn() async throws {
        try await withServer({
            $0.maxFramePayload = 1 << 20
            $0.inboundMemoryBudget = 4 << 20
            // The three frames received first must not time out while a loaded machine runs the
            // test, nor be closed as stalled while the others wait (the stall rule has its own tests).
            $0.frameTimeout = .seconds(120)
            $0.inboundStallTimeout = .seconds(120)
        }) { server, port in
            let frame = Self.request(1, bytes: 1 << 20)
            var connections: [RawConnection] = []
            for _ in 0..<10 {
                let (connection, _) = try await RawConnection.handshake(port: port)
                var start = Self.header(of: frame)
                start.writeImmutableBuffer(frame.payload.getSlice(at: 0, length: 100_000)!)
                try await connection.send(start)
                connections.append(connection)
            }
            try await Self.poll("7 connections waiting", server) { $0.waiting == 7 }
            #expect(server.inboundUsage.reserved == 3 * (Wire.frameHeaderSize + (1 << 20)))
            // Each client sends the rest at once (a client stopped by the server waits in its send).
            let rest = frame.payload.getSlice(at: 100_000, length: frame.payload.readableBytes - 100_000)!
            try await withThrowingTaskGroup(of: Void.self) { group in
                for connection in connections { group.addTask { try await connection.send(rest) } }
                try await group.waitForAll()
            }
            for connection in connections {
                // Not a CallRequest: refused, which is an answer.
                let answer = try #require(await connection.nextFrame(where: { $0.type == .response }))
                #expect(try CallResponse.decode(answer.payload).status.code != .ok)
                await connection.close()
            }
            try await Self.poll("nothing held", server) { $0 == (0, 0) }
        }
    }

    /// The tester's second case, scaled down: complete large requests queued on one connection
    /// (each waiting for the request memory budget) hold at most the connection's share of the
    /// inbound budget; the rest wait in the socket, and every call is answered in the end.
    @Test func largeRequestsQueuedOnOneConnectionHoldItsShareOnly() async throws {
        let (service, events, gate) = TestService.make()
        try await withServer({
            $0.requestMemoryBudget = 1
            $0.inboundMemoryBudget = 8 << 20
        }, service: service) { server, port in
            let (connection, _) = try await RawConnection.handshake(port: port)
            try await connection.sendRequest(1, RequestMemoryBudgetTests.large("gate"))
            for await event in events {
                if case .started("gate") = event { break }
            }
            let payload = RequestMemoryBudgetTests.large("echo").encoded()
            let share = InboundMemoryBudget(bytes: 8 << 20, largestFrame: Wire.frameHeaderSize + Wire.defaultMaxFramePayload).perConnection
            var queued = ByteBuffer()
            let ids = (1...20).map { UInt32(2 * $0 + 1) }
            for id in ids { FrameEncoder.write(Frame(type: .request, streamID: id, payload: payload), into: &queued) }
            let sending = Task { try await connection.send(queued) }
            try await Self.poll("the connection waiting", server) { $0.waiting == 1 }
            #expect(server.inboundUsage.reserved <= share + 256 << 10)
            await gate.open()
            try await sending.value
            var answered: Set<UInt32> = []
            while answered.count < ids.count + 1 {
                let answer = try #require(await connection.nextFrame(where: { $0.type == .response }))
                #expect(try CallResponse.decode(answer.payload).status.code == .ok)
                answered.insert(answer.streamID)
            }
            #expect(answered == Set([1] + ids))
            await connection.close()
            try await Self.poll("nothing held", server) { $0 == (0, 0) }
        }
    }
}
