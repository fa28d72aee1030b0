import BacktestCore
import BacktestModel
import BacktestProtocol
import BacktestReporting
import BacktestService
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// The web dashboard's settings (`backtestd --http-port`).
package struct WebConfiguration: Sendable {
    /// The address to bind: backtestd passes its TCP host (loopback by default).
    package var host: String
    /// 0 picks a free port (tests).
    package var port: Int
    /// Largest request body in bytes; a larger one is answered 413 with a JSON error.
    package var maxBodyBytes: Int

    /// 1 MiB: a strategy file is a few hundred bytes, a batch of listed variants a few hundred KB.
    package static let defaultMaxBodyBytes = 1 << 20

    package init(host: String = "127.0.0.1", port: Int, maxBodyBytes: Int = WebConfiguration.defaultMaxBodyBytes) {
        self.host = host
        self.port = port
        self.maxBodyBytes = maxBodyBytes
    }
}

/// The dashboard: one page (`GET /`, its script and style) and a small HTTP/JSON API over the
/// same `BacktestService` the TCP server calls, so a backtest started here takes the one
/// execution path (validation, the pipeline, batch jobs, GetBatchStatus, GetVariantResults).
///
/// Routes (docs/web-api.md):
/// - `GET /api/info`: ServerInfo.
/// - `POST /api/backtest`: a strategy file → the result (ResultDocument's JSON).
/// - `POST /api/batches`: a batch (grid or variants) → a `text/event-stream` of `update`
///   events (UpdateDocument, summaries only), then `end`; an `error` event when the batch stops
///   after it started. An error before it started (the service's validation, admission) is a
///   JSON error answer.
///   A client that goes away leaves the batch running, as a lost TCP connection does: it re-attaches
///   with `GET /api/batches/{id}`.
/// - `GET /api/batches/{id}?known=0-3,5`: GetBatchStatus.
/// - `GET /api/batches/{id}/variants/{index}`: GetVariantResults, one FULL result.
/// - `GET /api/batches/{id}/csv?sort=sharpe`: the final table's CSV (409 while not final).
/// - `POST /api/batches/{id}/cancel`: CancelBatch.
///
/// Errors are JSON (`ErrorDocument`): the status's code, a bounded message and the field path.
package struct WebDashboard: Sendable {
    package let service: any BacktestService
    package let configuration: WebConfiguration
    package let logger: Logger

    package init(service: any BacktestService, configuration: WebConfiguration, logger: Logger) {
        self.service = service
        self.configuration = configuration
        self.logger = logger
    }

    /// The Hummingbird application, a `Service` for backtestd's ServiceGroup. `onRunning` gets the
    /// bound port once the server listens.
    package func application(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        Application(
            router: router(),
            configuration: ApplicationConfiguration(
                address: .hostname(configuration.host, port: configuration.port), serverName: "backtestd"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
    }

    /// The routes.
    package func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/") { _, _ in Self.asset(WebAssets.indexHTML, type: "text/html; charset=utf-8") }
        router.get("/index.html") { _, _ in Self.asset(WebAssets.indexHTML, type: "text/html; charset=utf-8") }
        router.get("/assets/dashboard.js") { _, _ in Self.asset(WebAssets.script, type: "text/javascript; charset=utf-8") }
        router.get("/assets/dashboard.css") { _, _ in Self.asset(WebAssets.style, type: "text/css; charset=utf-8") }

        router.get("/api/info") { _, _ in
            await Self.answer(logger) { () async throws -> Response in
                let info = await service.serverInfo()
                return Self.json(InfoDocument(info))
            }
        }
        router.post("/api/backtest") { request, context in
            await Self.answer(logger) { () async throws -> Response in
                let body = try await Self.body(request, limit: configuration.maxBodyBytes)
                let backtest = try WebRequests.backtest(body)
                let result = try await service.runBacktest(backtest, context: Self.callContext(context, logger: logger))
                return Self.json(ResultDocument(result))
            }
        }
        router.post("/api/batches") { request, context in
            await Self.answer(logger) { () async throws -> Response in
                let body = try await Self.body(request, limit: configuration.maxBodyBytes)
                let batch = try WebRequests.batch(body)
                return await BatchStream(service: service, request: batch, context: Self.callContext(context, logger: logger)).response()
            }
        }
        router.get("/api/batches/:id") { request, context in
            await Self.answer(logger) { () async throws -> Response in
                let id = try Self.batchID(context)
                let known = try WebRequests.indices(request.uri.queryParameters["known"] ?? "", limit: Self.maxIndex)
                let update = try await service.batchStatus(id: id, knownIndices: known, context: Self.callContext(context, logger: logger))
                return Self.json(UpdateDocument(update))
            }
        }
        router.get("/api/batches/:id/variants/:index") { _, context in
            await Self.answer(logger) { () async throws -> Response in
                let id = try Self.batchID(context)
                guard let text = context.parameters.get("index"), let index = Int(text), index >= 0 else {
                    throw BacktestError.invalidArgument("expected a variant index (0 or more)", field: "index")
                }
                let results = try await service.variantResults(
                    batchID: id, selection: .indices([index]), context: Self.callContext(context, logger: logger))
                guard let variant = results.first else { throw BacktestError(.notFound, "no variant \(index)", field: "index") }
                switch variant.detail {
                case .full(let result): return Self.json(ResultDocument(result))
                case .failure(let error): throw error
                case .summary: throw BacktestError(.internal, "GetVariantResults answered a summary")
                }
            }
        }
        router.get("/api/batches/:id/csv") { request, context in
            await Self.answer(logger) { () async throws -> Response in
                let id = try Self.batchID(context)
                let sortText = request.uri.queryParameters["sort"].map(String.init) ?? "sharpe"
                guard let metric = BatchMetric(name: sortText) else {
                    throw BacktestError.invalidArgument(
                        "unknown metric (one of: \(BatchMetric.allCases.map(\.rawValue).joined(separator: ", ")))", field: "sort")
                }
                return try await BatchCSV(id: id, metric: metric, service: service, context: Self.callContext(context, logger: logger)).response()
            }
        }
        router.post("/api/batches/:id/cancel") { _, context in
            await Self.answer(logger) { () async throws -> Response in
                let update = try await service.cancelBatch(id: try Self.batchID(context), context: Self.callContext(context, logger: logger))
                return Self.json(UpdateDocument(update))
            }
        }
        return router
    }

    /// Largest index a `known` list may name (the largest grid has a million variants).
    static let maxIndex = 2_000_000

    // MARK: Helpers

    /// Runs `body`, answering a thrown error as JSON: a `BacktestError` with its code, message
    /// and field; anything else as INTERNAL with a generic message (and logged).
    static func answer(_ logger: Logger, _ body: () async throws -> Response) async -> Response {
        do {
            return try await body()
        } catch let error as BacktestError {
            return errorResponse(error)
        } catch is NIOTooManyBytesError {
            return errorResponse(BacktestError(.resourceExhausted, "the request body is larger than the server accepts"), status: .contentTooLarge)
        } catch is CancellationError {
            return errorResponse(BacktestError(.cancelled, "the call was cancelled"))
        } catch {
            logger.error("web: a request failed: \(error)")
            return errorResponse(BacktestError(.internal, "internal error"))
        }
    }

    static func errorResponse(_ error: BacktestError, status: HTTPResponse.Status? = nil) -> Response {
        json(ErrorDocument(error), status: status ?? httpStatus(error.code))
    }

    /// The HTTP status of a call status.
    static func httpStatus(_ code: StatusCode) -> HTTPResponse.Status {
        switch code {
        case .ok: .ok
        case .invalidArgument, .outOfRange: .badRequest
        case .notFound: .notFound
        case .failedPrecondition, .alreadyExists, .aborted, .cancelled: .conflict
        case .resourceExhausted: .tooManyRequests
        case .deadlineExceeded: .gatewayTimeout
        case .unavailable: .serviceUnavailable
        case .unimplemented: .notImplemented
        case .permissionDenied: .forbidden
        case .unauthenticated: .unauthorized
        default: .internalServerError
        }
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        headers[.xContentTypeOptions] = "nosniff"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: WebJSON.encode(value))))
    }

    /// The page's headers: a content security policy that allows only the page's own script and
    /// style (no inline script, no other origin), so even a slip in escaping could not run code.
    static func asset(_ bytes: [UInt8], type: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        headers[.xContentTypeOptions] = "nosniff"
        headers[.contentSecurityPolicy] =
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// The body, at most `limit` bytes (more is 413).
    static func body(_ request: Request, limit: Int) async throws -> Data {
        let buffer = try await request.body.collect(upTo: limit)
        return Data(buffer.readableBytesView)
    }

    static func batchID(_ context: BasicRequestContext) throws(BacktestError) -> String {
        guard let id = context.parameters.get("id"), !id.isEmpty, id.utf8.count <= 128 else {
            throw .invalidArgument("expected a batch id of at most 128 bytes", field: "batch_id")
        }
        return id
    }

    static func fileSafe(_ id: String) -> String {
        String(id.prefix(64).map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" })
    }

    /// A call's context: the HTTP request id, the peer as the client, no deadline of its own.
    static func callContext(_ context: BasicRequestContext, logger: Logger, connection: ConnectionState = ConnectionState()) -> CallContext {
        CallContext(streamID: 0, requestID: context.id, client: "http", logger: logger, connection: connection)
    }
}

/// `GET /api/info`.
struct InfoDocument: Codable, Sendable {
    var serverVersion: String
    var dataSource: String
    var engine: String
    var maxParallel: Int
    var uptimeSeconds: Double

    init(_ info: ServerInfo) {
        serverVersion = info.serverVersion
        dataSource = info.dataSource
        engine = info.engine
        maxParallel = info.maxParallel
        uptimeSeconds = info.uptimeSeconds
    }
}

extension HTTPField.Name {
    static let xContentTypeOptions = Self("X-Content-Type-Options")!
}
