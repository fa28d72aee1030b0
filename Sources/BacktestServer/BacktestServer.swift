import BacktestProtocol
import BacktestService
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The backtestd TCP server: one `ServerConnectionHandler` per connection, calls dispatched to a
/// `BacktestService`.
///
/// Lifecycle: `run()` binds, serves, and returns once the listener is closed and every connection
/// has ended. Graceful shutdown (swift-service-lifecycle, e.g. SIGTERM in `backtestd`) closes the
/// listener, sends GOAWAY on every connection and lets in-flight calls finish for up to
/// `drainTimeout`; then the remaining connections are closed, which cancels their calls.
/// Cancelling the task running `run()` closes everything at once.
package final class BacktestServer: Service, Sendable {
    package let configuration: ServerConfiguration
    private let service: any BacktestService
    private let group: any EventLoopGroup
    private let logger: Logger
    private let connections = ConnectionRegistry()
    private let listener = NIOLockedValueBox<(any Channel)?>(nil)
    private let bound = BoundAddress()
    /// Shared by every connection: large requests take turns within it.
    private let requestMemory: RequestMemoryBudget
    /// Shared by every connection: bounds the bytes of incoming frames held at once.
    private let inboundMemory: InboundMemoryBudget
    /// Shared by every connection: bounds the bytes of output held for clients at once.
    private let outputMemory: OutputMemoryBudget

    package init(configuration: ServerConfiguration = ServerConfiguration(), service: any BacktestService,
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                logger: Logger = Logger(label: "backtestd.server")) {
        self.configuration = configuration
        self.service = service
        self.group = group
        self.logger = logger
        requestMemory = RequestMemoryBudget(bytes: configuration.requestMemoryBudget)
        inboundMemory = InboundMemoryBudget(configuration)
        outputMemory = OutputMemoryBudget(configuration)
    }

    /// The address the server listens on, once bound (with the real port when configured with 0).
    package var boundAddress: SocketAddress {
        get async throws { try await bound.wait() }
    }

    /// Connections currently open (for diagnostics and tests).
    package var connectionCount: Int { connections.count }

    /// Bytes of incoming frames reserved now, and connections waiting to read (`InboundMemoryBudget`).
    package var inboundUsage: (reserved: Int, waiting: Int) { inboundMemory.usage }

    /// Bytes of output held for clients now, and connections evicted so far (`OutputMemoryBudget`).
    package var outputUsage: (held: Int, evictions: Int) { outputMemory.usage }

    package func run() async throws {
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { [self] channel in initialize(channel) }
                .bind(host: configuration.host, port: configuration.port).get()
        } catch {
            let failure = ServerBindError(host: configuration.host, port: configuration.port, underlying: error)
            bound.complete(.failure(failure))
            throw failure
        }
        listener.withLockedValue { $0 = channel }
        if let address = channel.localAddress { bound.complete(.success(address)) }
        logger.info("listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])

        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await channel.closeFuture.get()
                await connections.waitUntilEmpty()
            } onGracefulShutdown: { [self] in
                shutdownGracefully()
            }
        } onCancel: { [self] in
            channel.close(promise: nil)
            connections.closeAll()
        }
        logger.info("stopped")
    }

    /// Stops accepting connections and drains the open ones (see the type's documentation).
    package func shutdownGracefully() {
        logger.info("shutting down: draining connections")
        listener.withLockedValue { $0 }?.close(promise: nil)
        connections.drainAll()
        // Each connection force-closes itself after `drainTimeout` (its state machine's drain
        // timer); this server-wide timer is a backstop that also logs what was cut off.
        let drainTimeout = configuration.drainTimeout
        group.next().scheduleTask(in: drainTimeout) { [connections, logger] in
            if connections.count > 0 {
                logger.notice("drain timeout: closing \(connections.count) connections with calls in flight")
                connections.closeAll()
            }
        }
    }

    private func initialize(_ channel: any Channel) -> EventLoopFuture<Void> {
        let id = ConnectionRegistry.nextID()
        let connectionLogger = {
            var logger = self.logger
            logger[metadataKey: "connection"] = "\(id)"
            if let remote = channel.remoteAddress { logger[metadataKey: "peer"] = "\(remote)" }
            return logger
        }()
        let configuration = self.configuration
        let connections = self.connections
        let service = self.service
        let requestMemory = self.requestMemory
        let inboundMemory = self.inboundMemory
        let outputMemory = self.outputMemory
        return channel.eventLoop.submit {
            let sync = channel.pipeline.syncOperations
            let handler = ServerConnectionHandler(
                configuration: configuration, service: service, requestMemory: requestMemory, inboundMemory: inboundMemory,
                outputMemory: outputMemory, logger: connectionLogger)
            let admission = connections.admit(id, limit: configuration.maxConnections, ConnectionRegistry.Entry(
                channel: channel, drain: { handler.beginDrain() }, close: { handler.close() }))
            switch admission {
            case .admitted:
                // Removal follows the channel, not the handler: a client that hangs up before
                // this runs never reaches the handler's channelInactive, and its entry would keep
                // shutdown waiting forever.
                channel.closeFuture.whenComplete { _ in connections.remove(id) }
                try sync.addHandler(handler)
            case .tooMany:
                connectionLogger.notice("refusing a connection: limit of \(configuration.maxConnections) reached")
                try sync.addHandler(RefuseConnectionHandler(status: CallStatus(code: .resourceExhausted,
                    message: "the server has reached its limit of \(configuration.maxConnections) connections")))
            case .draining:
                try sync.addHandler(RefuseConnectionHandler(status: CallStatus(code: .unavailable,
                    message: "the server is shutting down")))
            }
        }
    }
}

/// Answers a connection the server will not serve with a GOAWAY, then closes it.
final class RefuseConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let status: CallStatus

    init(status: CallStatus) { self.status = status }

    func channelActive(context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 64)
        FrameEncoder.write(Frame(type: .goAway, streamID: 0,
                                 payload: GoAwayMessage(lastStreamID: 0, status: status).encoded()), into: &buffer)
        context.writeAndFlush(wrapOutboundOut(buffer)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}

/// The listening address, once known; waiters are resumed when `run()` has bound (or failed to).
/// Not an EventLoopPromise: a server that is never run must not trip NIO's leaked-promise check.
final class BoundAddress: Sendable {
    private let state = NIOLockedValueBox<(result: Result<SocketAddress, any Error>?,
                                           waiters: [CheckedContinuation<SocketAddress, any Error>])>((nil, []))

    func complete(_ result: Result<SocketAddress, any Error>) {
        let waiters = state.withLockedValue { state -> [CheckedContinuation<SocketAddress, any Error>] in
            guard state.result == nil else { return [] }
            state.result = result
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(with: result) }
    }

    func wait() async throws -> SocketAddress {
        try await withCheckedThrowingContinuation { continuation in
            let ready = state.withLockedValue { state -> Result<SocketAddress, any Error>? in
                if let result = state.result { return result }
                state.waiters.append(continuation)
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}

/// The listener could not be bound: the address and why, in words (`address already in use`),
/// so that backtestd can name the flag or variable behind the address
/// (`BacktestdConfiguration.bindFailure`).
package struct ServerBindError: Error, CustomStringConvertible {
    package let host: String
    package let port: Int
    /// Why, in words.
    package let reason: String
    /// Whether the host is at fault (not an address of this machine, or not an address at all)
    /// rather than the port (in use, or privileged).
    package let isAboutHost: Bool
    /// NIO's error.
    package let underlying: any Error

    package init(host: String, port: Int, underlying: any Error) {
        self.host = host
        self.port = port
        self.underlying = underlying
        switch underlying {
        case let error as IOError where error.errnoCode == EADDRINUSE:
            (reason, isAboutHost) = ("address already in use", false)
        case let error as IOError where error.errnoCode == EACCES:
            (reason, isAboutHost) = ("permission denied (ports below 1024 need privileges)", false)
        case let error as IOError where error.errnoCode == EADDRNOTAVAIL:
            (reason, isAboutHost) = ("not an address of this machine", true)
        case is SocketAddressError, is SocketAddressError.UnknownHost:
            (reason, isAboutHost) = ("not an IP address or a host name that resolves", true)
        case let error as IOError:
            (reason, isAboutHost) = ("cannot listen: \(error.description)", false)
        default:
            (reason, isAboutHost) = ("cannot listen: \(underlying)", false)
        }
    }

    package var description: String { "cannot listen on \(host):\(port): \(reason)" }
}
