import BacktestProtocol
@testable import BacktestServer
import NIOCore
import Testing

/// Issue 12, the fresh tester's cases: a connection that pipelines many calls and never reads
/// the answers (256 calls with 1.8 MB answers: 957 MB held; 3 connections: 2.6 GB), or many
/// connections that each send hundreds of small calls at once (10 x 256: 2.9 GB). A connection's
/// calls run at most `maxRunningCalls` at a time, each until its answer is handed to the socket,
/// so what one connection holds is bounded by that many answers plus its output buffer.
@Suite("Running calls per connection")
struct RunningCallsTests {
    /// A peer that reads nothing: answers of 600 KB fill its 1 MiB output bound, after which no
    /// further call of that connection starts, however many it sent.
    @Test func aPeerThatReadsNothingGetsNoMoreCallsStartedThanItsAnswersCanHold() throws {
        let connection = try EmbeddedConnection({
            $0.maxRunningCalls = 4
            $0.maxOutboundBuffer = 1 << 20
        }, stalledOutput: true)
        try connection.sendPreface()  // its SETTINGS stay in the stalled socket
        let ids = (0..<64).map { UInt32(2 * $0 + 1) }
        for id in ids { try connection.request(id) }
        #expect(connection.calls.started == [1, 3, 5, 7])
        let answer = ByteBuffer(repeating: 0x41, count: 600 << 10)
        // Every call that starts answers at once, as fast as the server could compute them.
        var answered: Set<UInt32> = []
        while let id = connection.calls.started.first(where: { !answered.contains($0) }) {
            answered.insert(id)
            connection.handler.finish(id, answer)
        }
        // The first answer went to the socket (where the SETTINGS wait too) and freed its turn;
        // the others wait in their queues, each holding its turn: 1 + 4 calls started of 64.
        #expect(connection.calls.started == [1, 3, 5, 7, 9])
        #expect(connection.handler.stateMachine.runningCalls.count == 4)
        // The other 59 wait, undecoded; their deadlines end them (here: the maximum call time).
        #expect(connection.handler.stateMachine.streams.count == 64 - 5)
    }

    /// Closing a connection with calls waiting to start drops them without starting any.
    @Test func closingDropsTheWaitingCalls() throws {
        let connection = try EmbeddedConnection({ $0.maxRunningCalls = 1 })
        try connection.handshake()
        for id: UInt32 in [1, 3, 5] { try connection.request(id) }
        #expect(connection.calls.started == [1])
        _ = try connection.channel.close().wait()
        #expect(connection.calls.started == [1])
        #expect(connection.calls.cancelled.contains(1))
    }
}
