import BacktestClient
import BacktestCore
import BacktestTestSupport
import BacktestModel
import BacktestProtocol
import BacktestRawClient
import BacktestServer
import Logging
import NIOCore
import NIOPosix
import Testing

@Suite("Graceful shutdown and stream endings", .timeLimit(.minutes(1)))
struct ShutdownAndStreamEndTests {
    @Test func gracefulShutdownDrainsInFlightCallsAndRefusesNewOnes() async throws {
        let (service, events, gate) = TestService.make()
        var configuration = ServerConfiguration()
        configuration.port = 0
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let server = BacktestServer(configuration: configuration, service: service, logger: logger)
        let running = Task { try await server.run() }
        let port = try await server.boundAddress.port ?? 0

        let (connection, _) = try await RawConnection.handshake(port: port)
        try await connection.sendRequest(1, CallRequest(method: .runBacktest(BacktestRequest(strategy: strategy("gate"), settings: testSettings))))
        await events.next(.started("gate"))

        server.shutdownGracefully()
        let goAwayFrame = try #require(await connection.nextFrame(where: { $0.type == .goAway }))
        let goAway = try GoAwayMessage.decode(goAwayFrame.payload)
        #expect(goAway.lastStreamID == 1)
        #expect(goAway.status.code == .ok)

        // A new call on the draining connection is refused with UNAVAILABLE...
        try await connection.sendRequest(3, CallRequest(method: .serverInfo))
        let refused = try #require(await connection.nextFrame(where: { $0.type == .response }))
        #expect(refused.streamID == 3)
        #expect(try CallResponse.decode(refused.payload).status.code == .unavailable)
        // ... and so is a new connection.
        let late = BacktestClient(port: port)
        #expect(try await #require(throws: BacktestError.self) { try await late.serverInfo() }.code == .unavailable)

        // The in-flight call finishes with its real answer, then the connection closes and run() returns.
        await gate.open()
        let finished = try #require(await connection.nextFrame(where: { $0.type == .response }))
        #expect(finished.streamID == 1)
        let response = try CallResponse.decode(finished.payload)
        #expect(response.status == .ok)
        guard case .backtest(let result)? = response.result else { Issue.record("no result"); return }
        #expect(result.strategyName == "gate")
        await connection.waitClosed()
        try await running.value
    }

    @Test func truncatedStreamIsDistinguishableFromAFinishedOne() async throws {
        // A fake server that streams one update and then drops the connection without RESPONSE.
        let fake = try await TruncatingServer.start()
        let client = BacktestClient(port: fake.port)
        var received = 0
        let error = try await #require(throws: BacktestError.self) {
            for try await _ in client.runBatch([strategy("a"), strategy("b")], settings: testSettings, reattach: .disabled) {
                received += 1
            }
        }
        #expect(received == 1)
        #expect(error == BacktestError(.unavailable, "connection closed before the call finished"))
        await client.close()
        try await fake.channel.close()
    }

    @Test func reattachGivesUpWhenTheServerNeverAnswersTheStatus() async throws {
        // The fake server drops every call, GetBatchStatus included: each poll is UNAVAILABLE.
        let fake = try await TruncatingServer.start()
        let clock = ManualClock()
        let client = BacktestClient(port: fake.port)
        let policy = ReattachPolicy(giveUpAfter: .seconds(3), clock: clock)
        let batch = Task {
            var received = 0
            let error = await #expect(throws: BacktestError.self) {
                for try await _ in client.runBatch([strategy("a"), strategy("b")], settings: testSettings, reattach: policy) {
                    received += 1
                }
            }
            return (received, error)
        }
        // Polls at 0, 1, 2 and 3 s; the poll at 3 s is the last.
        for _ in 0..<3 { clock.advance(by: try await within("a poll's sleep") { try await clock.nextSleep() }) }
        let (received, error) = await batch.value
        #expect(received == 1)
        #expect(error?.code == .unavailable)
        #expect(error?.message.hasPrefix("gave up re-attaching to batch b after 3.0 seconds") == true)
        await client.close()
        try await fake.channel.close()
    }

    @Test func drainTimeoutForceClosesACallThatDoesNotFinish() async throws {
        let (service, events, _) = TestService.make()
        var configuration = ServerConfiguration()
        configuration.port = 0
        configuration.drainTimeout = .milliseconds(200)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let server = BacktestServer(configuration: configuration, service: service, logger: logger)
        let running = Task { try await server.run() }
        let port = try await server.boundAddress.port ?? 0

        let client = BacktestClient(port: port)
        let call = Task { try await client.runBacktest(strategy("block"), settings: testSettings) }
        await events.next(.started("block"))
        server.shutdownGracefully()
        // "block" only ends when cancelled: the drain timeout closes its connection, which cancels it.
        let error = await #expect(throws: BacktestError.self) { try await call.value }
        #expect(error == BacktestError(.unavailable, "connection closed before the call finished"))
        await events.next(.cancelled("block"))
        try await running.value
        #expect(server.connectionCount == 0)
    }

    @Test func clientOpensANewConnectionForTheNextCallAfterClose() async throws {
        let (service, _, _) = TestService.make()
        try await withServer(service: service) { server, port in
            let client = BacktestClient(port: port)
            _ = try await client.serverInfo()
            #expect(server.connectionCount == 1)
            await client.close()
            #expect(try await client.serverInfo().serverVersion == "test")
            await client.close()
        }
    }
}

/// Speaks just enough of the protocol to start a stream, then closes mid-stream.
final class TruncatingServer: Sendable {
    let channel: any Channel
    var port: Int { channel.localAddress?.port ?? 0 }

    private init(channel: any Channel) { self.channel = channel }

    static func start() async throws -> TruncatingServer {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(expectPreface: true)))
                    try channel.pipeline.syncOperations.addHandler(Handler())
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return TruncatingServer(channel: channel)
    }

    final class Handler: ChannelInboundHandler, Sendable {
        typealias InboundIn = InboundFrame
        typealias OutboundOut = ByteBuffer

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var out = ByteBuffer()
            switch unwrapInboundIn(data) {
            case .preface:
                let settings = ConnectionSettings(maxFramePayload: 1 << 20, maxConcurrentStreams: 10, keepaliveIntervalMs: 0,
                                                  idleTimeoutMs: 0, maxTimeoutMs: 0, serverVersion: "fake")
                FrameEncoder.write(Frame(type: .settings, streamID: 0, payload: settings.encoded()), into: &out)
                context.writeAndFlush(wrapOutboundOut(out), promise: nil)
            case .frame(let frame) where frame.type == .request:
                let update = ProgressUpdate(batchID: "b", completed: 1, total: 2, state: .partial)
                FrameEncoder.write(Frame(type: .data, streamID: frame.streamID, payload: update.encoded()), into: &out)
                context.writeAndFlush(wrapOutboundOut(out)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            case .frame:
                break
            }
        }
    }
}
