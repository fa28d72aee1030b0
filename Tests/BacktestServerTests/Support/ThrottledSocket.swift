import NIOCore

/// A socket whose peer reads at the pace a test chooses: frames the handler writes are held here
/// (with their write promises) until `read(bytes:)` lets that many bytes through, the way a
/// kernel buffer releases bytes to a slow reader. A write is passed on (to the test's
/// `frames()`) and its promise completed only once all of its bytes were read; the rest of a
/// read is kept as credit towards the next write.
final class ThrottledSocket: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var held: [(buffer: ByteBuffer, promise: EventLoopPromise<Void>?)] = []
    private var credit = 0
    private var context: ChannelHandlerContext?
    /// Bytes written by the handler and not yet read by the peer.
    private(set) var heldBytes = 0
    /// The most bytes held at once.
    private(set) var maxHeldBytes = 0

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let buffer = unwrapOutboundIn(data)
        held.append((buffer, promise))
        heldBytes += buffer.readableBytes
        maxHeldBytes = max(maxHeldBytes, heldBytes)
    }

    func flush(context: ChannelHandlerContext) {}

    /// The peer reads `bytes` more bytes.
    func read(bytes: Int) {
        guard let context else { return }
        credit += bytes
        var passed = false
        while let first = held.first, first.buffer.readableBytes <= credit {
            held.removeFirst()
            credit -= first.buffer.readableBytes
            heldBytes -= first.buffer.readableBytes
            context.write(wrapOutboundOut(first.buffer), promise: first.promise)
            passed = true
        }
        if held.isEmpty { credit = 0 }  // a reader with nothing to read does not bank it
        if passed { context.flush() }
    }
}
