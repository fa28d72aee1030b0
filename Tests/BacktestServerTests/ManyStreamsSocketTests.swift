import BacktestCore
import BacktestModel
import BacktestProtocol
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

/// 64 concurrent batches on one real connection whose client reads steadily, a bounded amount at
/// a time, and answers PINGs: nothing is dropped, every variant arrives once, then the RESPONSE.
@Suite("Many streams over a real socket", .timeLimit(.minutes(1)))
struct ManyStreamsSocketTests {
    /// Collects frames, answers PINGs at once, and finishes when every stream has its RESPONSE.
    final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = InboundFrame
        typealias OutboundOut = ByteBuffer
        struct State {
            var indices: [UInt32: [Int]] = [:]
            var statuses: [UInt32: StatusCode] = [:]
            var dataAfterResponse = 0
            var closed = false
            var goAway: String?
        }
        let state = NIOLockedValueBox(State())
        let done: EventLoopPromise<Void>
        let streams: Int

        init(done: EventLoopPromise<Void>, streams: Int) {
            self.done = done
            self.streams = streams
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .frame(let frame) = unwrapInboundIn(data) else { return }
            switch frame.type {
            case .ping where !frame.flags.contains(.ack):
                var buffer = ByteBuffer()
                FrameEncoder.write(Frame(type: .ping, flags: .ack, streamID: 0, payload: frame.payload), into: &buffer)
                context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
            case .data:
                let indices = (try? ProgressUpdate.decode(frame.payload))?.results.map(\.index) ?? [-1]
                state.withLockedValue {
                    if $0.statuses[frame.streamID] != nil { $0.dataAfterResponse += 1 }
                    $0.indices[frame.streamID, default: []] += indices
                }
            case .goAway:
                let status = (try? GoAwayMessage.decode(frame.payload))?.status
                state.withLockedValue { $0.goAway = status.map { "\($0.code): \($0.message)" } }
            case .response:
                let code = (try? CallResponse.decode(frame.payload))?.status.code ?? .unknown
                let finished = state.withLockedValue {
                    $0.statuses[frame.streamID] = code
                    return $0.statuses.count == streams
                }
                if finished { done.succeed() }
            default:
                break
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            let (goAway, finished) = state.withLockedValue { state in
                state.closed = true
                return (state.goAway, state.statuses.count)
            }
            done.fail(TestFailure("the server closed the connection after \(finished) calls ended (GOAWAY: \(goAway ?? "none"))"))
        }
    }

    @Test func sixtyFourBatchesWithASteadilyReadingClientAreNeverDropped() async throws {
        let (service, _, _) = TestService.make(bigPoints: 500)
        let streams = 64
        let variants = 12
        // A small output bound, so that most output waits in the streams' queues, and PINGs
        // while it does (an interval long enough for a loaded machine's scheduling hiccups).
        try await withServer({ $0.maxOutboundBuffer = 256 * 1024; $0.keepaliveInterval = .seconds(2) }, service: service) { _, port in
            let group = MultiThreadedEventLoopGroup.singleton
            let done = group.next().makePromise(of: Void.self)
            let collector = Collector(done: done, streams: streams)
            // autoRead off and a small receive buffer: the client takes one read's worth of bytes
            // every 2 ms, steadily, slower than the server produces.
            let channel = try await ClientBootstrap(group: group)
                .channelOption(.autoRead, value: false)
                .channelOption(.socketOption(.so_rcvbuf), value: 64 * 1024)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            ByteToMessageHandler(FrameDecoder(maxPayload: 64 << 20, expectPreface: false)))
                        try channel.pipeline.syncOperations.addHandler(collector)
                    }
                }
                .connect(host: "127.0.0.1", port: port).get()
            // Paced by the client's event loop (not the cooperative pool, which other suites'
            // CPU-bound work can hold up for seconds).
            let reading = channel.eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(2)) { _ in
                channel.read()
            }
            defer { reading.cancel() }
            var bytes = ByteBuffer()
            Wire.writePreface(into: &bytes)
            let batch = BatchRequest(variants: (0..<variants).map { _ in strategy("big") }, settings: testSettings)
            for stream in 0..<streams {
                let request = CallRequest(header: RequestHeader(requestID: "b\(stream)"), method: .runBatch(batch))
                FrameEncoder.write(Frame(type: .request, streamID: UInt32(2 * stream + 1), payload: request.encoded()), into: &bytes)
            }
            try await channel.writeAndFlush(bytes).get()
            try await done.futureResult.get()
            let state = collector.state.withLockedValue { $0 }
            #expect(!state.closed)
            #expect(state.dataAfterResponse == 0)
            for stream in 0..<streams {
                let id = UInt32(2 * stream + 1)
                #expect(state.indices[id] == Array(0..<variants), "stream \(id)")
                #expect(state.statuses[id] == .ok, "stream \(id)")
            }
            try? await channel.close()
        }
    }
}
