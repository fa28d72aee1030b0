import Atomics
import BacktestCore
#if canImport(Glibc)
import Glibc
#endif
import BacktestProtocol
import NIOCore
import NIOPosix

/// One TCP connection to a server, ready once the server's SETTINGS arrived.
final class ClientConnection: Sendable {
    let channel: any Channel
    let settings: ConnectionSettings
    /// Set by the channel initializer on the channel's loop; only read there.
    private let handler: NIOLoopBoundBox<ClientConnectionHandler?>
    private let usableFlag: ManagedAtomic<Bool>

    private init(channel: any Channel, settings: ConnectionSettings, handler: NIOLoopBoundBox<ClientConnectionHandler?>,
                 usable: ManagedAtomic<Bool>) {
        self.channel = channel
        self.settings = settings
        self.handler = handler
        self.usableFlag = usable
    }

    /// Usable for new calls (no GOAWAY received, not closed).
    var isUsable: Bool { usableFlag.load(ordering: .relaxed) && channel.isActive }

    static func connect(host: String, port: Int, configuration: BacktestClient.Configuration,
                        group: any EventLoopGroup) async throws -> ClientConnection {
        let usable = ManagedAtomic(true)
        let loop = group.next()
        let settingsPromise = loop.makePromise(of: ConnectionSettings.self)
        let handlerBox = NIOLoopBoundBox<ClientConnectionHandler?>.makeEmptyBox(eventLoop: loop)
        let maxPayload = configuration.maxInboundFramePayload
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: loop)
                .connectTimeout(configuration.connectTimeout)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let handler = ClientConnectionHandler(settings: settingsPromise, decodeLimits: configuration.decodeLimits,
                                                              livenessInterval: configuration.livenessInterval,
                                                              usabilityChanged: { usable.store($0, ordering: .relaxed) })
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maxPayload: maxPayload, expectPreface: false)))
                        try channel.pipeline.syncOperations.addHandler(handler)
                        handlerBox.value = handler
                    }
                }
                .connect(host: host, port: port).get()
        } catch {
            settingsPromise.fail(error)
            throw BacktestError(.unavailable, "cannot connect to \(host):\(port): \(Self.reason(error))", cause: error)
        }
        // A peer that accepts the connection but never sends SETTINGS (a stuck proxy, not a
        // backtestd) must not hold the call forever: the handshake shares the connect timeout.
        let handshakeTimer = loop.scheduleTask(in: configuration.connectTimeout) {
            settingsPromise.fail(BacktestError(.unavailable, "no SETTINGS from \(host):\(port) within the connect timeout"))
        }
        defer { handshakeTimer.cancel() }
        do {
            let settings = try await settingsPromise.futureResult.get()
            return ClientConnection(channel: channel, settings: settings, handler: handlerBox, usable: usable)
        } catch {
            channel.close(promise: nil)
            if let error = error as? BacktestError { throw error }
            throw BacktestError(.unavailable, "handshake with \(host):\(port) failed: \(error)", cause: error)
        }
    }

    /// A call answered by one RESPONSE. Cancelling the calling task sends CANCEL.
    func unary(_ request: CallRequest, localDeadline: TimeAmount?) async throws -> CallResponse {
        let promise = channel.eventLoop.makePromise(of: CallResponse.self)
        let observer = ClientConnectionHandler.Observer(onData: nil, onEnd: { promise.completeWith($0) })
        let handler = self.handler
        let id: UInt32
        do {
            id = try await channel.eventLoop.submit {
                try Self.handler(handler).start(request, observer: observer, localDeadline: localDeadline)
            }.get()
        } catch {
            promise.fail(error)
            throw error
        }
        return try await withTaskCancellationHandler {
            try await promise.futureResult.get()
        } onCancel: {
            handler.eventLoop.execute { handler.value?.cancel(id) }
        }
    }

    /// A server-streaming call: `onData` for each DATA payload, then `onEnd` once.
    /// Returns a function that cancels the call.
    func streaming(_ request: CallRequest, localDeadline: TimeAmount?,
                   onData: @escaping @Sendable (ByteBuffer) -> Void,
                   onEnd: @escaping @Sendable (Result<CallResponse, any Error>) -> Void) async throws -> @Sendable () -> Void {
        let observer = ClientConnectionHandler.Observer(onData: onData, onEnd: onEnd)
        let handler = self.handler
        let id = try await channel.eventLoop.submit {
            try Self.handler(handler).start(request, observer: observer, localDeadline: localDeadline)
        }.get()
        return { handler.eventLoop.execute { handler.value?.cancel(id) } }
    }

    func ping() async throws {
        let promise = channel.eventLoop.makePromise(of: Void.self)
        let handler = self.handler
        handler.eventLoop.execute {
            guard let value = handler.value else { return promise.fail(ClientConnectionHandler.closedBeforeFinish) }
            value.ping(promise)
        }
        try await promise.futureResult.get()
    }

    func close() {
        channel.close(promise: nil)
    }

    private static func handler(_ box: NIOLoopBoundBox<ClientConnectionHandler?>) throws -> ClientConnectionHandler {
        guard let handler = box.value else { throw ClientConnectionHandler.CallNotProcessed(error: ClientConnectionHandler.closedBeforeFinish) }
        return handler
    }
}

extension ClientConnection {
    /// Why a connect failed, in words for a person ("connection refused", "timed out"); NIO's
    /// own description ("Connection errors: SingleConnectionFailure(target: ...") goes to the
    /// error's `cause` only (PROTOCOL.md §6: messages never carry an internal error's text).
    static func reason(_ error: any Error) -> String {
        switch error {
        case let error as NIOConnectionError:
            if let first = error.connectionErrors.first { return reason(first.error) }
            if error.dnsAError != nil || error.dnsAAAAError != nil { return "the host name did not resolve" }
            return "no address to connect to"
        case let error as IOError:
            return String(cString: strerror(error.errnoCode)).lowercased()
        case let error as ChannelError:
            if case .connectTimeout = error { return "timed out" }
            return "the connection failed"
        default:
            return "the connection failed"
        }
    }
}
