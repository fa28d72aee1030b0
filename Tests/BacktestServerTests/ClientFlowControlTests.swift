import BacktestClient
import BacktestCore
import NIOCore
import NIOPosix
import Testing

/// The client keeps to the server's announced stream limit by queueing calls, so callers never
/// see RESOURCE_EXHAUSTED for using one connection heavily.
@Suite("Client flow control under max_concurrent_streams", .timeLimit(.minutes(1)))
struct ClientFlowControlTests {
    @Test func callsBeyondTheStreamLimitWaitInsteadOfBeingRefused() async throws {
        let (service, events, gate) = TestService.make()
        try await withServer({ $0.maxConcurrentStreams = 2 }, service: service) { server, port in
            let client = BacktestClient(port: port)
            try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<5 {
                    group.addTask { try await client.runBacktest(strategy("gate"), settings: testSettings).strategyName }
                }
                // Two calls hold the server's two streams at the gate; the other three are queued
                // on the client (sent, they would be refused with RESOURCE_EXHAUSTED at once).
                var iterator = events.makeAsyncIterator()
                var started = 0
                while started < 2, let event = await iterator.next() {
                    if event == .started("gate") { started += 1 }
                }
                await gate.open()
                var answers: [String] = []
                for try await name in group { answers.append(name) }
                #expect(answers == Array(repeating: "gate", count: 5))
            }
            #expect(server.connectionCount == 1)
            await client.close()
        }
    }

    @Test func aQueuedCallThatTimesOutBeforeItLeftIsNeverSent() async throws {
        let (service, events, gate) = TestService.make()
        try await withServer({ $0.maxConcurrentStreams = 1 }, service: service) { _, port in
            let client = BacktestClient(port: port)
            let holder = Task { try await client.runBacktest(strategy("gate"), settings: testSettings) }
            var iterator = events.makeAsyncIterator()
            #expect(await iterator.next() == .started("gate"))
            // The stream is taken, so this call waits in the client's queue until its own
            // deadline ends it there.
            let error = await #expect(throws: BacktestError.self) {
                try await client.runBacktest(strategy("queued"), settings: testSettings, timeout: .milliseconds(100))
            }
            #expect(error?.code == .deadlineExceeded)
            await gate.open()
            _ = try await holder.value
            // The next call runs; the service saw the gate call and this one, never "queued".
            _ = try await client.runBacktest(strategy("echo"), settings: testSettings)
            var seen: [ServiceEvent] = []
            while let event = await iterator.next() {
                seen.append(event)
                if event == .finished("echo") { break }
            }
            #expect(seen == [.finished("gate"), .started("echo"), .finished("echo")])
            await client.close()
        }
    }
}

/// A client that cannot connect says why in words, without NIO's description of its internals
/// (a tester saw "Connection errors: SingleConnectionFailure(target: [IPv4]…").
@Suite struct ClientConnectErrorTests {
    @Test func aRefusedConnectionSaysSo() async throws {
        // A port nothing listens on: bound, then closed.
        let probe = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(probe.localAddress?.port)
        try await probe.close()
        let client = BacktestClient(port: port)
        let error = await #expect(throws: BacktestError.self) { _ = try await client.serverInfo(timeout: .seconds(5)) }
        #expect(error?.code == .unavailable)
        #expect(error?.message == "cannot connect to 127.0.0.1:\(port): connection refused", "\(error?.message ?? "")")
        await client.close()
    }
}
