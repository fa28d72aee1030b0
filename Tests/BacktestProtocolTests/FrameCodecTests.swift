import BacktestProtocol
import NIOCore
import Testing

@Suite("Frame codec")
struct FrameCodecTests {
    private func bytes(_ frames: [Frame]) -> ByteBuffer {
        var buffer = ByteBuffer()
        for frame in frames { FrameEncoder.write(frame, into: &buffer) }
        return buffer
    }

    private func decodeAll(_ buffer: ByteBuffer, decoder: FrameDecoder) throws -> (frames: [InboundFrame], leftover: Int) {
        let processor = NIOSingleStepByteToMessageProcessor(decoder)
        var out: [InboundFrame] = []
        try processor.process(buffer: buffer) { out.append($0) }
        return (out, processor.unprocessedBytes)
    }

    @Test func headerLayoutIsBigEndianTenBytes() {
        let frame = Frame(type: .data, flags: .ack, streamID: 0x0102_0304, payload: ByteBuffer(bytes: [0xAA, 0xBB]))
        let encoded = bytes([frame])
        #expect(Array(encoded.readableBytesView) == [0, 0, 0, 2, 1, 2, 3, 4, 0x02, 0x01, 0xAA, 0xBB])
    }

    @Test func framesRoundTripWhenSplitAtEveryByte() throws {
        let frames = [
            Frame(type: .request, streamID: 1, payload: ByteBuffer(string: "hello")),
            Frame(type: .ping, flags: .ack, streamID: 0, payload: ByteBuffer()),
            Frame(type: FrameType(rawValue: 0x42), streamID: 7, payload: ByteBuffer(repeating: 9, count: 300)),
        ]
        let all = bytes(frames)
        let processor = NIOSingleStepByteToMessageProcessor(FrameDecoder(expectPreface: false))
        var decoded: [InboundFrame] = []
        for index in 0..<all.readableBytes {
            try processor.process(buffer: all.getSlice(at: index, length: 1)!) { decoded.append($0) }
        }
        #expect(decoded == frames.map { .frame($0) })
        #expect(processor.unprocessedBytes == 0)
    }

    @Test func prefaceThenFrames() throws {
        var buffer = ByteBuffer()
        Wire.writePreface(into: &buffer)
        FrameEncoder.write(Frame(type: .request, streamID: 1, payload: ByteBuffer(string: "x")), into: &buffer)
        let result = try decodeAll(buffer, decoder: FrameDecoder(expectPreface: true))
        #expect(result.frames.count == 2)
        #expect(result.frames.first == .preface(version: 1))
    }

    @Test(arguments: [
        Array("GET / HTTP/1.1\r\n".utf8),
        [0x16, 0x03, 0x01, 0x02, 0x00, 0x01],  // TLS handshake record, ClientHello
        [0x00],
    ])
    func badPrefaceIsRejectedAtTheFirstWrongByte(input: [UInt8]) {
        // One byte is enough to tell: nobody waits for ten bytes of an HTTP request.
        #expect(throws: FrameDecodingError.self) {
            _ = try decodeAll(ByteBuffer(bytes: input.prefix(1)), decoder: FrameDecoder(expectPreface: true))
        }
    }

    @Test func unsupportedVersionIsNamed() {
        var buffer = ByteBuffer()
        Wire.writePreface(into: &buffer, version: 9)
        #expect(throws: FrameDecodingError.unsupportedVersion(9)) {
            _ = try decodeAll(buffer, decoder: FrameDecoder(expectPreface: true))
        }
    }

    @Test func oversizedLengthIsRejectedFromTheHeaderAlone() {
        // Only the 10-byte header arrives: the decoder must refuse without waiting for the payload.
        var header = ByteBuffer()
        header.writeMultipleIntegers(UInt32(1025), UInt32(1), FrameType.request.rawValue, UInt8(0), endianness: .big)
        #expect(throws: FrameDecodingError.payloadTooLarge(length: 1025, limit: 1024)) {
            _ = try decodeAll(header, decoder: FrameDecoder(maxPayload: 1024, expectPreface: false))
        }
    }

    @Test func payloadAtTheLimitIsAccepted() throws {
        let frame = Frame(type: .data, streamID: 3, payload: ByteBuffer(repeating: 1, count: 1024))
        let result = try decodeAll(bytes([frame]), decoder: FrameDecoder(maxPayload: 1024, expectPreface: false))
        #expect(result.frames == [.frame(frame)])
    }

    @Test func partialFrameStaysBufferedAndIsReported() throws {
        let full = bytes([Frame(type: .request, streamID: 1, payload: ByteBuffer(string: "abcdef"))])
        let result = try decodeAll(full.getSlice(at: 0, length: 12)!, decoder: FrameDecoder(expectPreface: false))
        #expect(result.frames.isEmpty)
        #expect(result.leftover == 12)
    }
}
