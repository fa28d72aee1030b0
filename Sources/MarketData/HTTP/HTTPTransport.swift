/// One HTTP response, fully read.
package struct HTTPResponse: Sendable {
    package var status: Int
    /// Header fields in arrival order, names as sent.
    package var headers: [(name: String, value: String)]
    package var body: [UInt8]

    package init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The last value of header `name`, compared case-insensitively (HTTP/1.1 and HTTP/2
    /// servers, and proxies, write `X-RateLimit-Reset` in varying case).
    package func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.last { $0.name.lowercased() == wanted }?.value
    }

    package var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// Why a request got no HTTP response at all.
package struct HTTPTransportError: Error, Sendable, CustomStringConvertible {
    package enum Kind: Sendable {
        /// Connect or total timeout fired (a stalled server).
        case timedOut
        /// Could not connect, or the connection broke mid-response: worth retrying.
        case connectionFailed
        /// TLS verification, a malformed URL, an unsupported protocol: retrying will not help.
        case permanent
    }

    package var kind: Kind
    package var message: String

    package init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    package var description: String { message }
}

/// Performs GET requests. `CurlHTTPClient` is the real one; tests may substitute their own.
package protocol HTTPTransport: Sendable {
    func get(_ url: String, headers: [(name: String, value: String)]) async throws -> HTTPResponse

    /// The same, given up after `timeout` at most (connect included) even when the client's own
    /// timeouts are longer: what keeps a fetch inside its time budget. Throws
    /// `HTTPTransportError(.timedOut)` then. The default ignores `timeout`.
    func get(_ url: String, headers: [(name: String, value: String)], timeout: Duration) async throws -> HTTPResponse
}

extension HTTPTransport {
    public func get(_ url: String, headers: [(name: String, value: String)], timeout: Duration) async throws -> HTTPResponse {
        try await get(url, headers: headers)
    }
}

/// The instant by which the current call must be answered (the protocol call's deadline), for
/// fetches that run inside it: a vendor fetch never plans attempts or waits past it. Set by the
/// server around each call; nil outside one. Unstructured tasks started inside inherit it.
public enum FetchDeadline {
    @TaskLocal public static var current: ContinuousClock.Instant?
}
