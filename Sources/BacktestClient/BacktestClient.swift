import BacktestCore
import BacktestModel
import BacktestProtocol
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// An async client for backtestd.
///
/// One TCP connection carries every call (each on its own stream); it is opened on the first
/// call and reopened on the next call after it dropped or after the server sent GOAWAY.
/// Errors are `BacktestError` with the server's status code. Cancelling the task that awaits a
/// call (or iterates `runBatch`) sends CANCEL, which stops the work on the server.
///
/// A batch whose connection is lost re-attaches by itself: see `runBatch` and `ReattachPolicy`.
public actor BacktestClient {
    public struct Configuration: Sendable {
        public var connectTimeout = TimeAmount.seconds(5)
        /// Frames larger than this from the server close the connection.
        public var maxInboundFramePayload = 64 * 1024 * 1024
        public var decodeLimits = DecodeLimits(memoryBudget: 512 * 1024 * 1024, maxDepth: 48)
        /// Sent in every request header, for the server's logs.
        public var clientName = "backtest-swift/0.1"
        /// While calls are in flight the client PINGs the server every this often (nil: the
        /// server's `keepalive_interval_ms` from its SETTINGS, 30 s when it sends none). A server
        /// that sends nothing at all for two intervals, while it took everything the client
        /// wrote, is given up: the connection's calls end UNAVAILABLE. (A peer that completed the
        /// handshake and then went silent held `backtest run` for over 11 minutes.)
        public var livenessInterval: TimeAmount?
        public init() {}
    }

    public nonisolated let host: String
    public nonisolated let port: Int
    public nonisolated let configuration: Configuration
    private let group: any EventLoopGroup
    private var connection: ClientConnection?
    private var connecting: Task<ClientConnection, any Error>?

    public init(host: String = "127.0.0.1", port: Int = 50051, configuration: Configuration = Configuration(),
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.host = host
        self.port = port
        self.configuration = configuration
        self.group = group
    }

    // MARK: Calls

    public func runBacktest(_ strategy: Strategy, settings: BacktestSettings, timeout: Duration? = nil) async throws -> BacktestResult {
        let response = try await unary(.runBacktest(BacktestRequest(strategy: strategy, settings: settings)), timeout: timeout)
        guard case .backtest(let result)? = response.result else { throw Self.missingResult("RunBacktest") }
        return result
    }

    /// The batch's state and its finished results, leaving out `knownIndices`. One answer carries
    /// at most about half the server's frame limit of results: when `completed` is more than the
    /// results you hold, ask again with the indices you now have.
    public func batchStatus(id: String, knownIndices: [Int] = [], timeout: Duration? = nil) async throws -> ProgressUpdate {
        let response = try await unary(.batchStatus(batchID: id, knownIndices: knownIndices), timeout: timeout)
        guard case .batchStatus(let update)? = response.result else { throw Self.missingResult("GetBatchStatus") }
        return update
    }

    /// Stops batch `id` on the server, whichever connection started it (CancelBatch): no variant
    /// starts afterwards, and its RunBatch stream, if still open, ends with CANCELLED. Returns the
    /// batch's state afterwards without results: `.cancelled` with `completed` = the variants that
    /// finished, or the state it already ended in (`.final`, ...), which the call leaves as it is.
    /// Throws NOT_FOUND (field `batch_id`) for an unknown or expired id.
    public func cancelBatch(id: String, timeout: Duration? = nil) async throws -> ProgressUpdate {
        let response = try await unary(.cancelBatch(batchID: id), timeout: timeout)
        guard case .batchStatus(let update)? = response.result else { throw Self.missingResult("CancelBatch") }
        return update
    }

    /// GetVariantResults: the FULL results (curves and orders) of a finished or running batch's
    /// variants, by index or the best N by a metric (best first), recomputed by the server from
    /// the same data. At most 64 per call. NOT_FOUND when the batch expired or was evicted.
    public func variantResults(batchID: String, selection: VariantSelection, timeout: Duration? = nil) async throws -> [VariantResult] {
        let response = try await unary(.variantResults(batchID: batchID, selection: selection), timeout: timeout)
        guard case .variantResults(_, let results)? = response.result else {
            throw Self.missingResult("GetVariantResults")
        }
        return results
    }

    /// GetIndicators: the values of `request.series` on `request.ticker` (dates, adjusted closes,
    /// one array per canonical key with NaN for the warm-up), computed by the server as backtests
    /// compute them. Throws INVALID_ARGUMENT naming the field (`get_indicators.series[1]`, ...),
    /// NOT_FOUND (`get_indicators.ticker`) for a ticker without data, RESOURCE_EXHAUSTED for an
    /// answer over `IndicatorsRequest.maximumValues` values.
    public func indicators(_ request: IndicatorsRequest, timeout: Duration? = nil) async throws -> IndicatorsResult {
        let response = try await unary(.indicators(request), timeout: timeout)
        guard case .indicators(let result)? = response.result else { throw Self.missingResult("GetIndicators") }
        return result
    }

    public func serverInfo(timeout: Duration? = nil) async throws -> ServerInfo {
        let response = try await unary(.serverInfo, timeout: timeout)
        guard case .serverInfo(let info)? = response.result else { throw Self.missingResult("GetServerInfo") }
        return info
    }

    public func purgeCache(timeout: Duration? = nil) async throws -> PurgeCacheResult {
        let response = try await unary(.purgeCache, timeout: timeout)
        guard case .purge(let result)? = response.result else { throw Self.missingResult("PurgeCache") }
        return result
    }

    /// Round trip of a PING frame: proves the connection and the server's loop are alive.
    public func ping() async throws -> Duration {
        let connection = try await readyConnection()
        let start = ContinuousClock.now
        try await connection.ping()
        return ContinuousClock.now - start
    }

    /// The limits the server announced on the current connection (connecting if needed).
    public func serverSettings() async throws -> ConnectionSettings {
        try await readyConnection().settings
    }

    /// Closes the connection; in-flight calls end with UNAVAILABLE. A later call reconnects.
    public func close() {
        connection?.close()
        connection = nil
    }

    // MARK: Plumbing

    /// A call the server's GOAWAY says it did not process (it raced with an idle or shutdown
    /// GOAWAY) is retried on a new connection: the server guarantees it was not executed, so a
    /// retry cannot run it twice. Bounded, because a server that keeps refusing is an answer.
    private func unary(_ method: CallMethod, timeout: Duration?) async throws -> CallResponse {
        let request = request(method, timeout: timeout)
        var attempt = 0
        while true {
            attempt += 1
            let connection = try await readyConnection()
            do {
                let response = try await connection.unary(request, localDeadline: Self.localDeadline(timeout))
                if let error = response.status.error { throw error }
                return response
            } catch let notProcessed as ClientConnectionHandler.CallNotProcessed {
                forget(connection)
                if attempt >= Self.maxAttemptsForUnprocessedCalls { throw notProcessed.error }
            }
        }
    }

    /// A fresh connection can itself meet an idle GOAWAY when the process is starved for longer
    /// than the server's idle timeout between handshake and call; three attempts ride that out.
    static let maxAttemptsForUnprocessedCalls = 3

    nonisolated func request(_ method: CallMethod, timeout: Duration?) -> CallRequest {
        let millis = timeout.map { max(1, $0.wholeMilliseconds) } ?? 0
        return CallRequest(header: RequestHeader(timeoutMs: UInt32(clamping: millis), requestID: "",
                                                 client: configuration.clientName), method: method)
    }

    /// The server enforces the deadline; the client's own timer is a backstop a little later, for a
    /// server that stopped answering.
    static func localDeadline(_ timeout: Duration?) -> TimeAmount? {
        guard let timeout else { return nil }
        return ClientConnectionHandler.backstop(.nanoseconds(timeout.wholeNanoseconds))
    }

    /// Forgets a connection that refused a call (closing, GOAWAY): its usable flag may not have
    /// caught up yet, and a retry must not land on it again.
    func forget(_ refused: ClientConnection) {
        if connection === refused { connection = nil }
    }

    func readyConnection() async throws -> ClientConnection {
        if let connection, connection.isUsable { return connection }
        connection = nil
        if let connecting { return try await connecting.value }
        let task = Task { [host, port, configuration, group] in
            try await ClientConnection.connect(host: host, port: port, configuration: configuration, group: group)
        }
        connecting = task
        defer { connecting = nil }
        let fresh = try await task.value
        connection = fresh
        return fresh
    }

    private static func missingResult(_ method: String) -> BacktestError {
        BacktestError(.internal, "the server answered \(method) with OK but without a result")
    }
}
