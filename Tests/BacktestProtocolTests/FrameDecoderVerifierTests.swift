import BacktestProtocol
import NIOCore
import NIOEmbedded
import NIOTestUtils
import Testing

/// `FrameDecoder` under NIO's `ByteToMessageDecoderVerifier`, which feeds each input whole, one
/// byte at a time (in buffers with bytes before and after the readable window) and all of them
/// concatenated, in shuffled orders, and checks the frames produced and that nothing is left over.
@Suite("Frame decoder under ByteToMessageDecoderVerifier")
struct FrameDecoderVerifierTests {
    static func encoded(_ frames: [Frame]) -> ByteBuffer {
        var buffer = ByteBuffer()
        for frame in frames { FrameEncoder.write(frame, into: &buffer) }
        return buffer
    }

    @Test func framesAfterThePreface() throws {
        let cases: [[Frame]] = [
            [Frame(type: .request, streamID: 1, payload: ByteBuffer(string: "hello"))],
            [Frame(type: .ping, streamID: 0, payload: ByteBuffer())],  // empty payload
            [Frame(type: .ping, flags: .ack, streamID: 0, payload: ByteBuffer(bytes: [8, 1]))],
            [Frame(type: FrameType(rawValue: 0xEE), flags: FrameFlags(rawValue: 0xF0), streamID: 0x7FFF_FFFF,
                   payload: ByteBuffer(bytes: [0, 0, 0, 0]))],  // unknown type and flag bits pass through
            [Frame(type: .data, streamID: 3, payload: ByteBuffer(repeating: 0xAB, count: 3000)),
             Frame(type: .response, streamID: 3, payload: ByteBuffer(bytes: [0x12, 0x00])),
             Frame(type: .cancel, streamID: 5, payload: ByteBuffer())],  // several in one input
            [Frame(type: .data, streamID: 7, payload: ByteBuffer(repeating: 1, count: 4096))],  // at the limit
        ]
        try ByteToMessageDecoderVerifier.verifyDecoder(
            inputOutputPairs: cases.map { frames in (Self.encoded(frames), frames.map(InboundFrame.frame)) },
            decoderFactory: { FrameDecoder(maxPayload: 4096, expectPreface: false) })
    }

    /// The preface comes once per connection, so the verifier (one decoder for every input) cannot
    /// replay it; it gets the same treatment by hand: every split into two reads, and byte by byte.
    @Test func prefaceAndFramesWhateverTheReads() throws {
        var stream = ByteBuffer()
        Wire.writePreface(into: &stream)
        let frames = [Frame(type: .request, streamID: 1, payload: ByteBuffer(string: "abc")),
                      Frame(type: .ping, streamID: 0, payload: ByteBuffer())]
        var encoded = Self.encoded(frames)
        stream.writeBuffer(&encoded)
        let expected = [InboundFrame.preface(version: Wire.protocolVersion)] + frames.map(InboundFrame.frame)

        func decode(_ reads: [ByteBuffer]) throws -> [InboundFrame] {
            let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(expectPreface: true)))
            for read in reads { try channel.writeInbound(read) }
            var out: [InboundFrame] = []
            while let item = try channel.readInbound(as: InboundFrame.self) { out.append(item) }
            #expect(try channel.finish().isClean)
            return out
        }
        for split in 0...stream.readableBytes {
            let reads = [stream.getSlice(at: 0, length: split)!, stream.getSlice(at: split, length: stream.readableBytes - split)!]
            #expect(try decode(reads) == expected, "split at \(split)")
        }
        let bytes = (0..<stream.readableBytes).map { stream.getSlice(at: $0, length: 1)! }
        #expect(try decode(bytes) == expected)
    }
}
