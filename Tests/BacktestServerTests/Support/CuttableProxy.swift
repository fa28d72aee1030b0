import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A TCP proxy on 127.0.0.1 in front of a server: the test can cut every connection through it
/// at once (a network failure as both ends see it: the client's and the server's sockets close)
/// and count the bytes the server sent towards the client. New connections are accepted after a
/// cut, so a client can reconnect through it.
final class CuttableProxy: Sendable {
    let listener: any Channel
    private let state = NIOLockedValueBox<(channels: [any Channel], bytesToClient: Int)>(([], 0))

    var port: Int { listener.localAddress?.port ?? 0 }
    /// Bytes read from the server and forwarded to clients so far.
    var bytesToClient: Int { state.withLockedValue { $0.bytesToClient } }

    private init(listener: any Channel) { self.listener = listener }

    static func start(targetPort: Int) async throws -> CuttableProxy {
        let box = NIOLockedValueBox<CuttableProxy?>(nil)
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { inbound in
                ClientBootstrap(group: inbound.eventLoop)
                    .channelInitializer { outbound in
                        outbound.eventLoop.makeCompletedFuture {
                            try outbound.pipeline.syncOperations.addHandler(Glue(peer: inbound, counted: { bytes in
                                box.withLockedValue { $0 }?.state.withLockedValue { $0.bytesToClient += bytes }
                            }))
                        }
                    }
                    .connect(host: "127.0.0.1", port: targetPort)
                    .flatMapThrowing { outbound in
                        box.withLockedValue { $0 }?.state.withLockedValue { $0.channels += [inbound, outbound] }
                        try inbound.pipeline.syncOperations.addHandler(Glue(peer: outbound, counted: { _ in }))
                    }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let proxy = CuttableProxy(listener: listener)
        box.withLockedValue { $0 = proxy }
        return proxy
    }

    /// Closes every connection through the proxy (both sides).
    func cutAll() {
        let channels = state.withLockedValue { state in
            defer { state.channels.removeAll() }
            return state.channels
        }
        for channel in channels { channel.close(promise: nil) }
    }

    func stop() async {
        cutAll()
        try? await listener.close()
    }

    /// Forwards what one side reads to the other; a close on either side closes both.
    private final class Glue: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let peer: any Channel
        let counted: @Sendable (Int) -> Void

        init(peer: any Channel, counted: @escaping @Sendable (Int) -> Void) {
            self.peer = peer
            self.counted = counted
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            counted(buffer.readableBytes)
            peer.writeAndFlush(buffer, promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            peer.close(promise: nil)
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}
