import BacktestClient
import BacktestCore
import BacktestTestSupport
import BacktestModel
import BacktestProtocol
import BacktestServer
import NIOCore
import NIOPosix
import Testing

@Suite("Calls through BacktestClient", .timeLimit(.minutes(1)))
struct CallTests {
    @Test func serverInfoRoundTripsAndDomainCallsAreUnimplemented() async throws {
        try await withServer { _, port in
            let client = BacktestClient(port: port)
            let info = try await client.serverInfo()
            #expect(info.protocolVersion == 1)
            #expect(info.serverVersion == ServerConfiguration().serverVersion)
            let error = try await #require(throws: BacktestError.self) {
                try await client.runBacktest(strategy("x"), settings: testSettings)
            }
            #expect(error.code == .unimplemented)
            await client.close()
        }
    }

    @Test func valuesCrossTheWireIntactAndErrorsKeepTheirField() async throws {
        let (service, _, _) = TestService.make()
        try await withServer(service: service) { _, port in
            let client = BacktestClient(port: port)
            let result = try await client.runBacktest(strategy("echo"), settings: testSettings)
            #expect(result.strategyName == "echo")
            #expect(result.dates == [testSettings.start])
            let notFound = try await #require(throws: BacktestError.self) { try await client.batchStatus(id: "nope") }
            #expect(notFound == BacktestError(.notFound, "no batch nope", field: "get_batch_status.batch_id"))
            let crash = try await #require(throws: BacktestError.self) {
                try await client.runBacktest(strategy("crash"), settings: testSettings)
            }
            #expect(crash.code == .internal)
            #expect(crash.message == "internal error")  // no internals leak to the client
            await client.close()
        }
    }

    @Test func deadlineExpiryIsDeadlineExceededAndStopsTheWork() async throws {
        let (service, events, _) = TestService.make()
        let log = LogCapture()
        var logger = log.logger("test.server")
        logger.logLevel = .debug
        try await withServer(service: service, logger: logger) { _, port in
            let client = BacktestClient(port: port)
            let error = try await #require(throws: BacktestError.self) {
                try await client.runBacktest(strategy("block"), settings: testSettings, timeout: .milliseconds(50))
            }
            #expect(error.code == .deadlineExceeded)
            await events.next(.cancelled("block"))
            // The work it stopped ends as the call did, not CANCELLED (a tester read the log).
            var finished: [String] = []
            for _ in 0..<500 where finished.isEmpty {
                finished = log.messagesWithMetadata.filter { $0.hasPrefix("call finished") }
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(finished.count == 1 && finished[0].contains("status=\(StatusCode.deadlineExceeded)"), "\(finished)")
            await client.close()
        }
    }

    @Test func cancellingTheCallingTaskCancelsServerWork() async throws {
        let (service, events, _) = TestService.make()
        try await withServer(service: service) { _, port in
            let client = BacktestClient(port: port)
            let call = Task { try await client.runBacktest(strategy("block"), settings: testSettings) }
            await events.next(.started("block"))
            call.cancel()
            let error = try await #require(throws: BacktestError.self) { try await call.value }
            #expect(error.code == .cancelled)
            await events.next(.cancelled("block"))
            // The connection is still good for the next call.
            #expect(try await client.serverInfo().serverVersion == "test")
            await client.close()
        }
    }

    @Test func runBatchStreamsEveryUpdateThenFinishes() async throws {
        let (service, _, _) = TestService.make()
        try await withServer(service: service) { _, port in
            let client = BacktestClient(port: port)
            var updates: [ProgressUpdate] = []
            for try await update in client.runBatch((0..<5).map { strategy("v\($0)") }, settings: testSettings) {
                updates.append(update)
            }
            #expect(updates.map(\.completed) == [1, 2, 3, 4, 5])
            #expect(updates.last?.state == .final)
            #expect(updates.flatMap(\.results).map(\.index) == [0, 1, 2, 3, 4])
            await client.close()
        }
    }

    @Test func cancellingBatchIterationCancelsServerWork() async throws {
        let (service, events, _) = TestService.make()
        try await withServer(service: service) { _, port in
            let client = BacktestClient(port: port)
            let consumer = Task {
                for try await _ in client.runBatch([strategy("block"), strategy("never")], settings: testSettings) {}
            }
            await events.next(.started("batch"))
            consumer.cancel()
            await events.next(.cancelled("batch"))
            await client.close()
        }
    }

    @Test func manyConcurrentCallsOnOneConnection() async throws {
        let (service, _, _) = TestService.make()
        try await withServer(service: service) { server, port in
            let client = BacktestClient(port: port)
            try await withThrowingTaskGroup(of: String.self) { group in
                for index in 0..<100 {
                    group.addTask { try await client.runBacktest(strategy("call\(index)"), settings: testSettings).strategyName }
                }
                var names = Set<String>()
                for try await name in group { names.insert(name) }
                #expect(names == Set((0..<100).map { "call\($0)" }))
            }
            #expect(server.connectionCount == 1)
            await client.close()
        }
    }

    @Test func manyConcurrentCallsOnFiftyConnections() async throws {
        let (service, _, _) = TestService.make()
        try await withServer(service: service) { _, port in
            let clients = (0..<50).map { _ in BacktestClient(port: port) }
            try await withThrowingTaskGroup(of: String.self) { group in
                for index in 0..<100 {
                    let client = clients[index % 50]
                    group.addTask { try await client.runBacktest(strategy("call\(index)"), settings: testSettings).strategyName }
                }
                var count = 0
                for try await _ in group { count += 1 }
                #expect(count == 100)
            }
            for client in clients { await client.close() }
        }
    }

    @Test func clientReconnectsAfterTheConnectionDropped() async throws {
        // The first connection makes a call, then idles out; the new one has the handshake
        // timeout (5 s) to make its first call, so a loaded machine cannot idle it out too.
        try await withServer({ $0.idleTimeout = .milliseconds(100) }) { server, port in
            let client = BacktestClient(port: port)
            _ = try await client.serverInfo()
            // Wait (bounded by the suite limit) until the server dropped the idle connection.
            try await poll { server.connectionCount == 0 }
            #expect(try await client.serverInfo().protocolVersion == 1)
            await client.close()
        }
    }

    /// A peer that completes the handshake and then says nothing (a tester's fake server held
    /// `backtest run` for over 11 minutes): the client's liveness PINGs go unanswered, and its
    /// calls end UNAVAILABLE after two intervals.
    @Test func aServerThatStopsAnsweringIsGivenUpAfterTwoLivenessIntervals() async throws {
        final class SettingsThenSilence: ChannelInboundHandler, Sendable {
            typealias InboundIn = ByteBuffer
            func channelActive(context: ChannelHandlerContext) {
                CallTests.sendSettings(on: context, keepaliveMs: 200, maxTimeoutMs: 600_000)
            }
        }
        let mute = try await Self.fakePeer { SettingsThenSilence() }
        // The interval comes from the server's SETTINGS (200 ms here).
        let client = BacktestClient(port: try #require(mute.localAddress?.port))
        let started = ContinuousClock.now
        let error = try await #require(throws: BacktestError.self) {
            try await client.runBacktest(strategy("never answered"), settings: testSettings)
        }
        #expect(error.code == .unavailable)
        #expect(error.message.contains("the server sent nothing for 200 ms"), "\(error.message)")
        #expect(ContinuousClock.now - started < .seconds(30))
        await client.close()
        try await mute.close()
    }

    /// A peer that keeps the connection alive but never answers the call (a tester's fake
    /// server answered PINGs): a call without a deadline of its own ends on the client a little
    /// after the server's `max_timeout_ms`, as one with a deadline does.
    @Test func aCallWithoutADeadlineEndsAfterTheServersLongest() async throws {
        final class AnswersPingsOnly: ChannelInboundHandler, Sendable {
            typealias InboundIn = ByteBuffer
            func channelActive(context: ChannelHandlerContext) {
                CallTests.sendSettings(on: context, keepaliveMs: 100, maxTimeoutMs: 400)
                // Anything the server says keeps the client's liveness check content.
                func tick() {
                    context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(50)) {
                        var ack = context.channel.allocator.buffer(capacity: 16)
                        FrameEncoder.write(Frame(type: .ping, flags: .ack, streamID: 0, payload: ByteBuffer()), into: &ack)
                        context.writeAndFlush(NIOAny(ack), promise: nil)
                        if context.channel.isActive { tick() }
                    }
                }
                tick()
            }
        }
        let peer = try await Self.fakePeer { AnswersPingsOnly() }
        let client = BacktestClient(port: try #require(peer.localAddress?.port))
        let error = try await #require(throws: BacktestError.self) {
            try await client.runBacktest(strategy("never answered"), settings: testSettings)
        }
        #expect(error.code == .deadlineExceeded, "\(error)")
        #expect(error.message == "deadline exceeded (client side)")
        await client.close()
        try await peer.close()
    }

    /// A peer whose bytes are not this protocol (a 4 GB frame header): the client says so, not
    /// "connection closed during the handshake" (the peer had not closed).
    @Test func aPeerThatSendsAnotherProtocolIsNamedAsSuch() async throws {
        final class Garbage: ChannelInboundHandler, Sendable {
            typealias InboundIn = ByteBuffer
            func channelActive(context: ChannelHandlerContext) {
                let header: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 7, 0]
                context.writeAndFlush(NIOAny(context.channel.allocator.buffer(bytes: header)), promise: nil)
            }
        }
        let peer = try await Self.fakePeer { Garbage() }
        let client = BacktestClient(port: try #require(peer.localAddress?.port))
        let error = try await #require(throws: BacktestError.self) { try await client.serverInfo() }
        #expect(error.code == .unavailable)
        #expect(error.message.hasPrefix("the peer does not speak the backtest protocol: frame payload of 4294967295 bytes exceeds the limit"), "\(error.message)")
        await client.close()
        try await peer.close()
    }

    /// A server busy with a long call still answers PINGs: the call is not given up.
    @Test func aLongCallOnAServerThatAnswersPingsIsNotGivenUp() async throws {
        let (service, events, _) = TestService.make()
        try await withServer(service: service) { _, port in
            var configuration = BacktestClient.Configuration()
            // Long enough that a loaded machine (the whole suite on two cores) answers a PING
            // within it: 50 ms was not, once.
            configuration.livenessInterval = .milliseconds(700)
            let client = BacktestClient(port: port, configuration: configuration)
            let call = Task { try await client.runBacktest(strategy("block"), settings: testSettings) }
            await events.next(.started("block"))
            try await Task.sleep(for: .milliseconds(2_500))  // three checks, each after a PING
            call.cancel()
            let error = try await #require(throws: BacktestError.self) { try await call.value }
            #expect(error.code == .cancelled)
            await client.close()
        }
    }

    /// Writes a fake peer's SETTINGS frame.
    static func sendSettings(on context: ChannelHandlerContext, keepaliveMs: UInt32, maxTimeoutMs: UInt32) {
        var buffer = context.channel.allocator.buffer(capacity: 64)
        FrameEncoder.write(Frame(type: .settings, streamID: 0, payload: ConnectionSettings(
            maxFramePayload: 4 << 20, maxConcurrentStreams: 8, keepaliveIntervalMs: keepaliveMs, idleTimeoutMs: 60_000,
            maxTimeoutMs: maxTimeoutMs, serverVersion: "fake").encoded()), into: &buffer)
        context.writeAndFlush(NIOAny(buffer), promise: nil)
    }

    /// A listener on 127.0.0.1 whose connections each get `handler()`: a peer that is not a
    /// backtestd, or stops behaving as one.
    static func fakePeer(_ handler: @escaping @Sendable () -> any ChannelHandler & Sendable) async throws -> any Channel {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    @Test func aPeerThatNeverSendsSettingsFailsTheCallAfterTheConnectTimeout() async throws {
        // Accepts connections and says nothing, as a stuck proxy would.
        let silent = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { $0.eventLoop.makeSucceededVoidFuture() }
            .bind(host: "127.0.0.1", port: 0).get()
        var configuration = BacktestClient.Configuration()
        configuration.connectTimeout = .milliseconds(200)
        let client = BacktestClient(port: try #require(silent.localAddress?.port), configuration: configuration)
        let error = try await #require(throws: BacktestError.self) { try await client.serverInfo() }
        #expect(error.code == .unavailable)
        #expect(error.message.contains("no SETTINGS"))
        await client.close()
        try await silent.close()
    }
}
