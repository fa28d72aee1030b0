import Foundation
import BacktestCore
import BacktestProtocol
import BacktestServer
import BacktestService
import Logging
import NIOCore
import NIOPosix

/// A real server on 127.0.0.1, port 0, for the duration of `body`.
func withServer<R: Sendable>(
    _ configure: (inout ServerConfiguration) -> Void = { _ in },
    service: any BacktestService = UnimplementedBacktestService(),
    logger capturing: Logger? = nil,
    _ body: (BacktestServer, Int) async throws -> R
) async throws -> R {
    var configuration = ServerConfiguration()
    configuration.host = "127.0.0.1"
    configuration.port = 0
    // Test clients do not answer keepalive PINGs: with the default 30 s interval the server
    // closed their connections after about 60 s, which a test can take on a loaded machine (a
    // fresh-clone CI run beside other work failed 14 socket tests at 61-63 s with "I/O on closed
    // channel"). Tests of the keepalive set their own interval.
    configuration.keepaliveInterval = .seconds(600)
    configure(&configuration)
    var logger = Logger(label: "test.server")
    // BT_DEBUG=1 swift test ... shows the server's debug log (why a connection was closed).
    logger.logLevel = ProcessInfo.processInfo.environment["BT_DEBUG"] != nil ? .debug : .critical
    if let capturing { logger = capturing }
    let server = BacktestServer(configuration: configuration, service: service, logger: logger)
    let running = Task { try await server.run() }
    let port = try await server.boundAddress.port ?? 0
    do {
        let result = try await body(server, port)
        running.cancel()
        _ = await running.result
        return result
    } catch {
        running.cancel()
        _ = await running.result
        throw error
    }
}

/// Signals from a test service, so tests wait on events rather than time.
enum ServiceEvent: Sendable, Equatable {
    case started(String)
    case cancelled(String)
    case finished(String)
}

/// A one-shot gate tests open to let a waiting call proceed.
actor Gate {
    private var isOpen = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func wait() async {
        if isOpen { return }
        await withCheckedContinuation { waiters.append($0) }
    }

    func open() {
        isOpen = true
        for waiter in waiters { waiter.resume() }
        waiters.removeAll()
    }
}

/// Polls a real condition that has no event to wait on, with a bounded deadline.
func poll(timeout: Duration = .seconds(10), until condition: () async -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !(await condition()) {
        guard ContinuousClock.now < deadline else { throw TestFailure("condition not met within \(timeout)") }
        try await Task.sleep(for: .milliseconds(5))
    }
}
