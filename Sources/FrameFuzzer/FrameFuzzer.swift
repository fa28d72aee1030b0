import BacktestModel
import BacktestProtocol
import NIOCore

// libFuzzer entry point for the wire decoders: the frame decoder (with and without the
// preface) and every message decoder, on arbitrary bytes. A decoded CallRequest is re-encoded
// and decoded again, which must give the same value (the encoder is fuzzed through it).
//
//   scripts/run-fuzzer.sh 60
//
// Built with `swift build --sanitize fuzzer --sanitize address --product FrameFuzzer`.

private let limits = DecodeLimits(memoryBudget: 8 * 1024 * 1024, maxDepth: 48)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size))
    decodeFrames(bytes, expectPreface: true)
    decodeFrames(bytes, expectPreface: false)
    decodeEveryMessage(bytes)
    return 0
}

private func decodeFrames(_ bytes: ByteBuffer, expectPreface: Bool) {
    let processor = NIOSingleStepByteToMessageProcessor(FrameDecoder(maxPayload: 1 << 20, expectPreface: expectPreface))
    // Errors are the expected answer to most inputs; only crashes and sanitizer reports matter.
    try? processor.process(buffer: bytes) { inbound in
        guard case .frame(let frame) = inbound else { return }
        switch frame.type {
        case .request: _ = try? CallRequest.decode(frame.payload, limits: limits)
        case .data: _ = try? ProgressUpdate.decode(frame.payload, limits: limits)
        case .response: _ = try? CallResponse.decode(frame.payload, limits: limits)
        case .ping: _ = try? PingMessage.decode(frame.payload, limits: limits)
        case .cancel: _ = try? CancelMessage.decode(frame.payload, limits: limits)
        case .goAway: _ = try? GoAwayMessage.decode(frame.payload, limits: limits)
        case .settings: _ = try? ConnectionSettings.decode(frame.payload, limits: limits)
        default: break
        }
    }
}

private func decodeEveryMessage(_ bytes: ByteBuffer) {
    if let request = try? CallRequest.decode(bytes, limits: limits) {
        let again = try? CallRequest.decode(request.encoded(), limits: limits)
        if let again, case .success(let method) = request.method, case .success(let back) = again.method {
            // NaN compares unequal to itself; only compare values without it.
            let text = "\(method)"
            if !text.contains("nan"), back != method {
                fatalError("CallRequest did not survive encode/decode: \(method) vs \(back)")
            }
        }
    }
    if let response = try? CallResponse.decode(bytes, limits: limits) {
        _ = try? CallResponse.decode(response.encoded(), limits: limits)
    }
    if let update = try? ProgressUpdate.decode(bytes, limits: limits) {
        _ = try? ProgressUpdate.decode(update.encoded(), limits: limits)
    }
    _ = try? ConnectionSettings.decode(bytes, limits: limits)
    _ = try? GoAwayMessage.decode(bytes, limits: limits)
}
