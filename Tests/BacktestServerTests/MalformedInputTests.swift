import BacktestCore
import BacktestModel
import BacktestProtocol
import BacktestRawClient
import NIOCore
import Testing

/// Bytes that are not our protocol, and violations of it, against a real server: each is refused
/// with the documented status (GOAWAY) or a plain close, and the server keeps serving.
@Suite("Malformed input and connection limits", .timeLimit(.minutes(1)))
struct MalformedInputTests {
    @Test(arguments: [
        ("garbage", Array("\u{00}\u{FF}\u{13}garbage!!".utf8)),
        ("http", Array("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)),
        ("tls", [0x16, 0x03, 0x01, 0x00, 0xA5, 0x01, 0x00, 0x00, 0xA1, 0x03, 0x03] + [UInt8](repeating: 0x42, count: 32)),
    ])
    func nonProtocolBytesAreClosedAndTheServerStaysUp(name: String, bytes: [UInt8]) async throws {
        try await withServer { _, port in
            let connection = try await RawConnection(port: port)
            try await connection.send(ByteBuffer(bytes: bytes))
            await connection.waitClosed()
            // The server still serves a well-behaved client.
            let (healthy, settings) = try await RawConnection.handshake(port: port)
            #expect(settings.protocolVersion == 1)
            await healthy.close()
        }
    }

    @Test func settingsAnnounceTheConfiguredLimits() async throws {
        try await withServer({ $0.maxFramePayload = 12345; $0.maxConcurrentStreams = 7; $0.maxCallTimeout = .seconds(9) }) { _, port in
            let (connection, settings) = try await RawConnection.handshake(port: port)
            #expect(settings.maxFramePayload == 12345)
            #expect(settings.maxConcurrentStreams == 7)
            #expect(settings.maxTimeoutMs == 9000)
            await connection.close()
        }
    }

    @Test func unsupportedVersionGetsGoAwayUnimplemented() async throws {
        try await withServer { _, port in
            let connection = try await RawConnection(port: port)
            var preface = ByteBuffer()
            Wire.writePreface(into: &preface, version: 2)
            try await connection.send(preface)
            let goAway = try await connection.expectGoAwayAndClose()
            #expect(goAway.status.code == .unimplemented)
        }
    }

    @Test func oversizedLengthIsRefusedFromTheHeader() async throws {
        try await withServer({ $0.maxFramePayload = 1024 }) { _, port in
            let (connection, _) = try await RawConnection.handshake(port: port)
            var header = ByteBuffer()  // announces 1 MiB, sends none of it
            header.writeMultipleIntegers(UInt32(1 << 20), UInt32(1), FrameType.request.rawValue, UInt8(0), endianness: .big)
            try await connection.send(header)
            let goAway = try await connection.expectGoAwayAndClose()
            #expect(goAway.status.code == .resourceExhausted)
        }
    }

    @Test func slowlorisPartialFrameIsCutOff() async throws {
        try await withServer({ $0.frameTimeout = .milliseconds(50) }) { _, port in
            let (connection, _) = try await RawConnection.handshake(port: port)
            try await connection.send(ByteBuffer(bytes: [0, 0, 0, 20, 0, 0]))  // 6 of 10 header bytes, then silence
            let goAway = try await connection.expectGoAwayAndClose()
            #expect(goAway.status.code == .deadlineExceeded)
        }
    }

    @Test(arguments: [(UInt32(2), UInt32(4)), (UInt32(5), UInt32(3)), (UInt32(5), UInt32(5))])
    func evenDecreasingOrReusedStreamIDsEndTheConnection(first: UInt32, second: UInt32) async throws {
        let (service, _, _) = TestService.make()
        try await withServer(service: service) { _, port in
            let (connection, _) = try await RawConnection.handshake(port: port)
            let request = CallRequest(method: .serverInfo)
            try await connection.sendRequest(first, request)
            try? await connection.sendRequest(second, request)  // the server may already have hung up
            let goAway = try await connection.expectGoAwayAndClose()
            #expect(goAway.status.code == .invalidArgument)
        }
    }

    @Test func clientDataFramesAreAProtocolError() async throws {
        try await withServer { _, port in
            let (connection, _) = try await RawConnection.handshake(port: port)
            try await connection.send(Frame(type: .data, streamID: 1, payload: ByteBuffer()))
            #expect(try await connection.expectGoAwayAndClose().status.code == .invalidArgument)
        }
    }

    @Test func tooManyStreamsAreRefusedPerStream() async throws {
        let (service, events, _) = TestService.make()
        try await withServer({ $0.maxConcurrentStreams = 2 }, service: service) { _, port in
            let (connection, _) = try await RawConnection.handshake(port: port)
            let block = CallRequest(method: .runBacktest(BacktestRequest(strategy: strategy("block"), settings: testSettings)))
            try await connection.sendRequest(1, block)
            try await connection.sendRequest(3, block)
            try await connection.sendRequest(5, block)
            let refused = try #require(await connection.nextFrame(where: { $0.type == .response }))
            #expect(refused.streamID == 5)
            #expect(try CallResponse.decode(refused.payload).status.code == .resourceExhausted)
            // The refusal is per stream: the connection and the two calls go on. Cancel one and
            // see the service stop it.
            try await connection.send(Frame(type: .cancel, streamID: 1, payload: CancelMessage().encoded()))
            await events.next(.cancelled("block"))
            await connection.close()
        }
    }

    @Test func tooManyConnectionsGetGoAway() async throws {
        try await withServer({ $0.maxConnections = 1 }) { _, port in
            let (first, _) = try await RawConnection.handshake(port: port)
            let second = try await RawConnection(port: port)
            let goAway = try await second.expectGoAwayAndClose()
            #expect(goAway.status.code == .resourceExhausted)
            await first.close()
        }
    }

    @Test func handshakeTimeoutClosesSilentConnections() async throws {
        try await withServer({ $0.handshakeTimeout = .milliseconds(30) }) { _, port in
            let connection = try await RawConnection(port: port)
            // A valid but unfinished preface (on a loaded machine the server may hang up first).
            try? await connection.send(ByteBuffer(bytes: Array("BACK".utf8)))
            await connection.waitClosed()
        }
    }

    @Test func idleConnectionsAreClosedWithGoAwayOK() async throws {
        // A connection that never made a call is idle after the longer of the two timeouts. The
        // handshake timeout leaves the test's task ample time to send the preface on a loaded
        // machine (with 1 s it sometimes found the connection already closed).
        try await withServer({ $0.idleTimeout = .milliseconds(50); $0.handshakeTimeout = .seconds(5) }) { _, port in
            let (connection, _) = try await RawConnection.handshake(port: port)
            let goAway = try await connection.expectGoAwayAndClose()
            #expect(goAway.status.code == .ok)
            #expect(goAway.status.message.contains("idle"))
        }
    }

    @Test func unansweredKeepalivePingClosesTheConnectionAndCancelsItsCalls() async throws {
        let (service, events, _) = TestService.make()
        try await withServer({ $0.keepaliveInterval = .milliseconds(30) }, service: service) { _, port in
            let (connection, _) = try await RawConnection.handshake(port: port)
            try await connection.sendRequest(1, CallRequest(method: .runBacktest(
                BacktestRequest(strategy: strategy("block"), settings: testSettings))))
            // We read the PING but never answer it: a dead peer, as far as the server can tell.
            let ping = try #require(await connection.nextFrame(where: { $0.type == .ping }))
            #expect(!ping.flags.contains(.ack))
            let goAway = try await connection.expectGoAwayAndClose()
            #expect(goAway.status.code == .unavailable)
            await events.next(.cancelled("block"))
        }
    }

    @Test func unknownMethodIsUnimplemented() async throws {
        try await withServer { _, port in
            let (connection, _) = try await RawConnection.handshake(port: port)
            // A CallRequest with only a header { request_id: "r9" } and an unknown field 99.
            let payload = ByteBuffer(bytes: [0x0A, 0x04, 0x12, 0x02, 0x72, 0x39, 0x9A, 0x06, 0x00])
            try await connection.send(Frame(type: .request, streamID: 1, payload: payload))
            let frame = try #require(await connection.nextFrame(where: { $0.type == .response }))
            let response = try CallResponse.decode(frame.payload)
            #expect(response.status.code == .unimplemented)
            #expect(response.header.requestID == "r9")
            await connection.close()
        }
    }

    @Test func malformedAndOverBudgetRequestsFailTheCallNotTheConnection() async throws {
        var limits = DecodeLimits()
        limits.memoryBudget = 256 * 1024
        try await withServer({ $0.decodeLimits = limits }) { _, port in
            let (connection, _) = try await RawConnection.handshake(port: port)
            try await connection.send(Frame(type: .request, streamID: 1, payload: ByteBuffer(bytes: [0xFF, 0xFF])))
            let malformed = try #require(await connection.nextFrame(where: { $0.type == .response }))
            #expect(try CallResponse.decode(malformed.payload).status.code == .invalidArgument)

            // 50,000 empty variants: 100 KB on the wire, megabytes once unpacked.
            let variants = Array(repeating: [UInt8]([0x0A, 0x00]), count: 50_000).flatMap { $0 }
            var batch = ByteBuffer(bytes: [0x5A])  // field 11 (run_batch), length-delimited
            var length = variants.count
            while length >= 0x80 { batch.writeInteger(UInt8(length & 0x7F | 0x80)); length >>= 7 }
            batch.writeInteger(UInt8(length))
            batch.writeBytes(variants)
            try await connection.send(Frame(type: .request, streamID: 3, payload: batch))
            let exhausted = try #require(await connection.nextFrame(where: { $0.type == .response }))
            #expect(exhausted.streamID == 3)
            #expect(try CallResponse.decode(exhausted.payload).status.code == .resourceExhausted)

            // Still usable: a PING is answered.
            try await connection.send(Frame(type: .ping, streamID: 0, payload: PingMessage(opaque: 77).encoded()))
            let ack = try #require(await connection.nextFrame(where: { $0.type == .ping }))
            #expect(ack.flags.contains(.ack))
            #expect(try PingMessage.decode(ack.payload).opaque == 77)
            await connection.close()
        }
    }

    @Test func outputBufferIsBoundedForAPeerThatNeverReads() async throws {
        let (service, _, _) = TestService.make(bigPoints: 20_000)  // ~400 KB per result
        // Output beyond the bound waits in the streams' queues (PROTOCOL.md §2, "Output order and
        // backpressure"); a peer that takes nothing is closed after a keepalive interval with its
        // PING unanswered, which is 1 s here.
        try await withServer({ $0.maxOutboundBuffer = 1 << 20; $0.keepaliveInterval = .seconds(1) }, service: service) { server, port in
            // A peer with no handlers and autoRead off: it never takes a byte off its socket.
            let connection = try await RawConnection(port: port, readNothing: true)
            var preface = ByteBuffer()
            Wire.writePreface(into: &preface)
            try await connection.send(preface)
            let big = CallRequest(method: .runBacktest(BacktestRequest(strategy: strategy("big"), settings: testSettings)))
            var id: UInt32 = 1
            for _ in 0..<60 {  // ~24 MB of answers: far more than socket buffers plus the 1 MiB bound
                // The server may give up on us while we are still sending: that is the bound at work.
                guard (try? await connection.sendRequest(id, big)) != nil else { break }
                id += 2
            }
            // No frame can tell us (we do not read): the server's own count shows it hung up.
            try await poll { server.connectionCount == 0 }
            await connection.close()
        }
    }
}
