import BacktestCore
import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// A stand-in for Alpaca's market-data API on 127.0.0.1, serving bars from CSV files in
/// Alpaca's documented JSON (see `FakeAlpacaBarsEndpoint`), with the failures a real client
/// must survive injectable on demand.
///
///     let server = try await FakeAlpacaServer.start(.init(dataDirectory: SharedData.dailyDirectory))
///     defer { server.shutdownNow() }  // or: try await server.shutdown()
///     // point AlpacaConfiguration.baseURL at server.baseURL, keys at server.configuration.keyID/secretKey
///     server.inject([.rateLimited(resetAt: 1_700_000_003), .serverError(body: "oops")])
///     server.latency = .milliseconds(150)
///
/// Self-contained (NIO, Foundation, BacktestCore only): MarketDataTests and `backtest-bench bench`
/// share it. `rateLimit(for:)` is the chaos switch of `backtest-bench loadtest --chaos`.
package final class FakeAlpacaServer: Sendable {
    package struct Configuration: Sendable {
        package var dataDirectory: URL
        package var keyID: String
        package var secretKey: String
        package var latency: Duration

        package init(dataDirectory: URL, keyID: String = "fake-key-id", secretKey: String = "fake-secret-key", latency: Duration = .zero) {
            self.dataDirectory = dataDirectory
            self.keyID = keyID
            self.secretKey = secretKey
            self.latency = latency
        }
    }

    /// One scripted answer, used for the next request instead of the normal one.
    package enum Fault: Sendable {
        /// 429 with X-RateLimit-Limit, X-RateLimit-Remaining: 0 and X-RateLimit-Reset.
        case rateLimited(resetAt: Int, limit: Int = 200)
        /// A server error, with whatever body (JSON or not).
        case serverError(status: Int = 500, body: String = "{\"code\":50010000,\"message\":\"internal server error occurred\"}")
        /// Reads the request and never answers (the client's timeout must fire).
        case stall
        /// The normal answer, written `by` after the request arrived (instead of after `latency`):
        /// a vendor that is slow but not stalled, e.g. slower than the client's request timeout.
        case delayed(by: Duration)
        /// Any status and body, e.g. 403 with the SIP-subscription message.
        case custom(status: Int, body: String)
    }

    package let configuration: Configuration
    package let port: Int
    package var baseURL: String { "http://127.0.0.1:\(port)" }

    private let group: MultiThreadedEventLoopGroup
    private let state: Mutex<State>
    let endpoint: FakeAlpacaBarsEndpoint

    struct State {
        var latency: Duration
        var faults: [Fault] = []
        var holding = false
        var held: [EventLoopPromise<Void>] = []
        var requestCount = 0
        /// Unix seconds until which every request is answered 429 (`rateLimit(for:)`).
        var rateLimitedUntil: Double?
        var rateLimitedCount = 0
        var connectionCount = 0
        var queries: [String] = []
        var requestWaiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
        var bars: [String: DailyBars?] = [:]
    }

    package static func start(_ configuration: Configuration) async throws -> FakeAlpacaServer {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let box = Mutex<FakeAlpacaServer?>(nil)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let server = box.withLock({ $0 }) else { throw ChannelError.ioOnClosedChannel }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(FakeAlpacaHandler(server: server))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let server = FakeAlpacaServer(configuration: configuration, group: group, port: channel.localAddress?.port ?? 0)
        box.withLock { $0 = server }
        return server
    }

    private init(configuration: Configuration, group: MultiThreadedEventLoopGroup, port: Int) {
        self.configuration = configuration
        self.group = group
        self.port = port
        self.endpoint = FakeAlpacaBarsEndpoint(dataDirectory: configuration.dataDirectory)
        self.state = Mutex(State(latency: configuration.latency))
    }

    /// Releases held responses and closes every connection.
    package func shutdown() async throws {
        releaseHeldResponses()
        try await group.shutdownGracefully()
    }

    // MARK: Behaviour

    /// Time from a request's arrival to its response (building the body included).
    package var latency: Duration {
        get { state.withLock { $0.latency } }
        set { state.withLock { $0.latency = newValue } }
    }

    /// The next requests get these answers, in order, then normal service resumes.
    package func inject(_ faults: [Fault]) {
        state.withLock { $0.faults.append(contentsOf: faults) }
    }

    /// For `duration` from now, every request is answered 429 with `X-RateLimit-Reset` at the end
    /// of the period (rounded up to the second, as Alpaca sends it), the way a quota exhausted by
    /// other clients looks; scripted `inject` faults still come first.
    package func rateLimit(for duration: Duration) {
        let until = Date().timeIntervalSince1970 + duration.seconds
        state.withLock { $0.rateLimitedUntil = until }
    }

    /// Until `releaseHeldResponses`, requests are read and counted but not answered.
    package func holdResponses() {
        state.withLock { $0.holding = true }
    }

    package func releaseHeldResponses() {
        let held = state.withLock { state in
            state.holding = false
            defer { state.held = [] }
            return state.held
        }
        for promise in held { promise.succeed() }
    }

    // MARK: Observation

    package var requestCount: Int { state.withLock { $0.requestCount } }
    /// Requests answered 429 because of `rateLimit(for:)`.
    package var rateLimitedResponseCount: Int { state.withLock { $0.rateLimitedCount } }
    /// TCP connections accepted (keep-alive reuses one for many requests).
    package var connectionCount: Int { state.withLock { $0.connectionCount } }
    /// The query string of every request, in arrival order.
    package var receivedQueries: [String] { state.withLock { $0.queries } }

    /// Returns once `count` requests have arrived in all (no polling, no sleeping).
    package func waitForRequests(_ count: Int) async {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state in
                if state.requestCount >= count { return true }
                state.requestWaiters.append((count, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }

    // MARK: Serving (called by the handler on its event loop)

    struct Plan {
        var status: Int
        var headers: [(String, String)]
        var body: String
        var latency: Duration
        /// Completes when the response may be written; nil for a stall (never).
        var gate: EventLoopFuture<Void>?
    }

    func connectionOpened() {
        state.withLock { $0.connectionCount += 1 }
    }

    func plan(uri: String, headers: HTTPHeadersLike, on eventLoop: any EventLoop) -> Plan {
        let (path, query) = Self.split(uri)
        let now = Date().timeIntervalSince1970
        let (fault, plannedLatency, gate, waiters) = state.withLock { state in
            state.requestCount += 1
            state.queries.append(query)
            let count = state.requestCount
            let ready = state.requestWaiters.filter { $0.count <= count }.map(\.continuation)
            state.requestWaiters.removeAll { $0.count <= count }
            var fault = state.faults.isEmpty ? nil : state.faults.removeFirst()
            if fault == nil, let until = state.rateLimitedUntil {
                if now < until {
                    fault = .rateLimited(resetAt: Int(until.rounded(.up)))
                    state.rateLimitedCount += 1
                } else {
                    state.rateLimitedUntil = nil
                }
            }
            var gate: EventLoopFuture<Void> = eventLoop.makeSucceededFuture(())
            if state.holding {
                let promise = eventLoop.makePromise(of: Void.self)
                state.held.append(promise)
                gate = promise.futureResult
            }
            return (fault, state.latency, gate, ready)
        }
        for waiter in waiters { waiter.resume() }
        var latency = plannedLatency
        let rateHeaders = [("X-RateLimit-Limit", "200"), ("X-RateLimit-Remaining", "199"),
                           ("X-RateLimit-Reset", String(Int(Date().timeIntervalSince1970) + 60))]
        func answer(_ status: Int, _ body: String, _ extra: [(String, String)] = rateHeaders) -> Plan {
            Plan(status: status, headers: extra, body: body, latency: latency, gate: gate)
        }
        switch fault {
        case .rateLimited(let resetAt, let limit):
            return answer(429, "{\"code\":42910000,\"message\":\"too many requests.\"}",
                          [("x-ratelimit-limit", String(limit)), ("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", String(resetAt))])
        case .serverError(let status, let body):
            return answer(status, body, [])
        case .custom(let status, let body):
            return answer(status, body)
        case .stall:
            return Plan(status: 0, headers: [], body: "", latency: latency, gate: nil)
        case .delayed(let delay):
            latency = delay
        case nil:
            break
        }
        guard headers.first("APCA-API-KEY-ID") == configuration.keyID,
              headers.first("APCA-API-SECRET-KEY") == configuration.secretKey
        else { return answer(401, "{\"code\":40110000,\"message\":\"request is not authorized\"}") }
        guard path == "/v2/stocks/bars" else { return answer(404, "{\"message\":\"Not Found\"}") }
        let parameters = query.split(separator: "&").map { pair -> (String, String) in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let decode = { (text: Substring) in text.removingPercentEncoding ?? String(text) }
            return (decode(parts[0]), parts.count > 1 ? decode(parts[1]) : "")
        }
        let response = endpoint.respond(query: parameters) { self.rawBars($0) }
        return answer(response.status, response.body)
    }

    private func rawBars(_ symbol: String) -> DailyBars? {
        if let cached = state.withLock({ $0.bars[symbol] }) { return cached }
        let url = configuration.dataDirectory.appendingPathComponent("\(symbol).csv")
        let bars = (try? String(contentsOf: url, encoding: .utf8)).flatMap { try? DailyBarsCSV.parse($0, symbol: symbol) }
        state.withLock { $0.bars[symbol] = .some(bars) }
        return bars
    }

    private static func split(_ uri: String) -> (path: String, query: String) {
        guard let mark = uri.firstIndex(of: "?") else { return (uri, "") }
        return (String(uri[..<mark]), String(uri[uri.index(after: mark)...]))
    }
}

/// The one thing the planner needs from request headers (keeps NIOHTTP1 out of this file).
protocol HTTPHeadersLike {
    func first(_ name: String) -> String?
}
