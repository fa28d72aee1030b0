import BacktestService
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// Serves `GET /metrics` (Prometheus text format 0.0.4) from `ServerMetrics` on its own port,
/// bound to 127.0.0.1 by default; any other path answers 404, any other method 405. Runs as a
/// lifecycle service beside the server and stops on graceful shutdown.
///
/// Plain NIOHTTP1 (already in the dependency graph through swift-nio): one route does not need
/// a web framework's build time.
package struct MetricsHTTPService: Service {
    package let metrics: ServerMetrics
    package let host: String
    package let port: Int
    let logger: Logger
    /// Completed with the bound port once listening (tests use port 0).
    let bound: (@Sendable (Int) -> Void)?

    package init(metrics: ServerMetrics, host: String = "127.0.0.1", port: Int, logger: Logger = Logger(label: "backtestd.metrics"),
                bound: (@Sendable (Int) -> Void)? = nil) {
        self.metrics = metrics
        self.host = host
        self.port = port
        self.logger = logger
        self.bound = bound
    }

    package func run() async throws {
        let metrics = self.metrics
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(metrics: metrics))
                }
            }
            .bind(host: host, port: port).get()
        let actualPort = channel.localAddress?.port ?? port
        logger.info("metrics: http://\(host):\(actualPort)/metrics")
        bound?(actualPort)
        await cancelWhenGracefulShutdown {
            try? await withTaskCancellationHandler {
                try await channel.closeFuture.get()
            } onCancel: {
                channel.close(promise: nil)
            }
        }
        try? await channel.close()
    }
}

/// Answers one request per head: the exposition for GET /metrics, 404/405 otherwise.
final class MetricsHTTPHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let metrics: ServerMetrics

    init(metrics: ServerMetrics) {
        self.metrics = metrics
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else { return }
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        let status: HTTPResponseStatus
        let body: [UInt8]
        var headers = HTTPHeaders()
        if path != "/metrics" {
            (status, body) = (.notFound, Array("only /metrics is served here\n".utf8))
            headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        } else if head.method != .GET && head.method != .HEAD {
            (status, body) = (.methodNotAllowed, Array("use GET\n".utf8))
            headers.add(name: "Allow", value: "GET, HEAD")
        } else {
            (status, body) = (.ok, metrics.render())
            headers.add(name: "Content-Type", value: "text/plain; version=0.0.4; charset=utf-8")
        }
        headers.add(name: "Content-Length", value: String(body.count))
        headers.add(name: "Connection", value: head.isKeepAlive ? "keep-alive" : "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        let keepAlive = head.isKeepAlive
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { [context] _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }
}
