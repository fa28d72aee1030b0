import BacktestCore
import CCurlShim
import Foundation
import NIOPosix
import Synchronization

/// HTTP GET over libcurl, for Alpaca's REST API.
///
/// Why libcurl rather than URLSession: on Linux it gives us keep-alive with TLS session reuse,
/// gzip, precise connect/total timeouts and the system's CA store, with no extra dependencies.
/// Every blocking `curl_easy_perform` runs on a thread of a `NIOThreadPool` (the package's one
/// pool for blocking C calls; hiredis runs on another instance of it), never on the cooperative
/// pool or a NIO event loop. Easy handles are kept in a free list and each is used by one
/// thread at a time (handles are not thread-safe; reusing one keeps its connections open).
/// TLS peer and host verification stay on; redirects are not followed (Alpaca does not
/// redirect, and following one would send the API keys elsewhere).
package final class CurlHTTPClient: HTTPTransport {
    package struct Configuration: Sendable {
        package var connectTimeout: Duration
        /// Limit on one request, connect included: what makes a stalled server fail. The fetch's
        /// budget (`RetryPolicy.maxTotalWait`) shortens it for the last attempts.
        package var requestTimeout: Duration
        /// Requests that can run at once (one thread and one connection each).
        package var maxConcurrentRequests: Int
        package var userAgent: String

        package init(
            connectTimeout: Duration = .seconds(5), requestTimeout: Duration = .seconds(10),
            maxConcurrentRequests: Int = 4, userAgent: String = "backtestd/1.0"
        ) {
            self.connectTimeout = connectTimeout
            self.requestTimeout = requestTimeout
            self.maxConcurrentRequests = maxConcurrentRequests
            self.userAgent = userAgent
        }
    }

    package let configuration: Configuration
    private let pool: NIOThreadPool
    /// Idle easy handles; at most `maxConcurrentRequests` exist, one per running request.
    private let handles: CurlHandleList

    package init(configuration: Configuration = Configuration()) {
        _ = CurlGlobal.initialized
        self.configuration = configuration
        pool = NIOThreadPool(numberOfThreads: max(1, configuration.maxConcurrentRequests))
        pool.start()
        handles = CurlHandleList()
    }

    deinit {
        // Queued requests still finish; the idle handles are closed once the threads are gone.
        let handles = self.handles
        pool.shutdownGracefully { _ in handles.closeAll() }
    }

    package func get(_ url: String, headers: [(name: String, value: String)]) async throws -> HTTPResponse {
        try await get(url, headers: headers, timeout: configuration.requestTimeout)
    }

    /// One GET whose connect and total timeouts are at most `timeout`.
    package func get(_ url: String, headers: [(name: String, value: String)], timeout: Duration) async throws -> HTTPResponse {
        var bounded = self.configuration
        bounded.requestTimeout = min(bounded.requestTimeout, max(timeout, .milliseconds(1)))
        bounded.connectTimeout = min(bounded.connectTimeout, bounded.requestTimeout)
        let configuration = bounded
        let handles = self.handles
        do {
            return try await pool.runIfActive {
                let handle = handles.take()
                defer { handles.put(handle) }
                return try handle.get(url, headers: headers, configuration: configuration)
            }
        } catch let error as HTTPTransportError {
            throw error
        } catch {
            throw HTTPTransportError(.permanent, "HTTP client is shut down")
        }
    }
}

/// The idle easy handles of a `CurlHTTPClient`.
private final class CurlHandleList: Sendable {
    private let idle = Mutex<[CurlEasyHandle]>([])

    func take() -> CurlEasyHandle {
        idle.withLock { $0.popLast() } ?? CurlEasyHandle()
    }

    func put(_ handle: CurlEasyHandle) {
        idle.withLock { $0.append(handle) }
    }

    func closeAll() {
        for handle in idle.withLock({ list in defer { list = [] }; return list }) { handle.close() }
    }
}

/// `curl_global_init` must run once, before any other thread uses libcurl.
enum CurlGlobal {
    static let initialized: Bool = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK
}

/// One libcurl easy handle, used by one thread at a time.
// Unchecked: a handle is used by one thread at a time, handed over through `CurlHandleList`'s lock.
final class CurlEasyHandle: @unchecked Sendable {
    private var handle: UnsafeMutableRawPointer?

    init() {
        handle = curl_easy_init()
    }

    func close() {
        if let handle { curl_easy_cleanup(handle) }
        handle = nil
    }

    /// Accumulates the response while curl calls back with pieces of it.
    private final class Sink {
        var status = 0
        var headers: [(name: String, value: String)] = []
        var body: [UInt8] = []
    }

    func get(
        _ url: String, headers: [(name: String, value: String)], configuration: CurlHTTPClient.Configuration
    ) throws(HTTPTransportError) -> HTTPResponse {
        guard let handle else { throw HTTPTransportError(.permanent, "libcurl could not create a handle") }
        // Reset clears options but keeps live connections, the TLS session and DNS caches.
        curl_easy_reset(handle)
        var headerList: UnsafeMutablePointer<curl_slist>?
        for (name, value) in headers { headerList = curl_slist_append(headerList, "\(name): \(value)") }
        defer { curl_slist_free_all(headerList) }

        let sink = Sink()
        let sinkPointer = Unmanaged.passUnretained(sink).toOpaque()
        _ = curlshim_setopt_string(handle, CURLOPT_URL, url)
        _ = curlshim_setopt_long(handle, CURLOPT_HTTPGET, 1)
        _ = curlshim_setopt_long(handle, CURLOPT_NOSIGNAL, 1)  // timeouts without SIGALRM: required with threads
        _ = curlshim_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0)
        _ = curlshim_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 1)
        _ = curlshim_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 2)
        _ = curlshim_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "http,https")
        _ = curlshim_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, milliseconds(configuration.connectTimeout))
        _ = curlshim_setopt_long(handle, CURLOPT_TIMEOUT_MS, milliseconds(configuration.requestTimeout))
        _ = curlshim_setopt_long(handle, CURLOPT_TCP_KEEPALIVE, 1)
        _ = curlshim_setopt_string(handle, CURLOPT_ACCEPT_ENCODING, "")  // every encoding libcurl decodes
        _ = curlshim_setopt_string(handle, CURLOPT_USERAGENT, configuration.userAgent)
        _ = curlshim_setopt_pointer(handle, CURLOPT_HTTPHEADER, headerList)
        _ = curlshim_setopt_write_function(handle) { data, size, count, context in
            guard let data, let context else { return 0 }
            let sink = Unmanaged<Sink>.fromOpaque(context).takeUnretainedValue()
            let length = size * count
            data.withMemoryRebound(to: UInt8.self, capacity: length) {
                sink.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: length))
            }
            return length
        }
        _ = curlshim_setopt_pointer(handle, CURLOPT_WRITEDATA, sinkPointer)
        _ = curlshim_setopt_header_function(handle) { data, size, count, context in
            guard let data, let context else { return 0 }
            let sink = Unmanaged<Sink>.fromOpaque(context).takeUnretainedValue()
            let length = size * count
            let line = data.withMemoryRebound(to: UInt8.self, capacity: length) {
                String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
            }
            if line.hasPrefix("HTTP/") {
                sink.headers.removeAll()  // a new response (after 100 Continue): start over
            } else if let colon = line.firstIndex(of: ":") {
                let name = line[..<colon].trimmingCharacters(in: .whitespaces)
                let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
                sink.headers.append((name, value))
            }
            return length
        }
        _ = curlshim_setopt_pointer(handle, CURLOPT_HEADERDATA, sinkPointer)

        let result = withExtendedLifetime(sink) { curl_easy_perform(handle) }
        guard result == CURLE_OK else {
            let message = "\(String(cString: curl_easy_strerror(result))) (curl \(result.rawValue))"
            switch result {
            case CURLE_OPERATION_TIMEDOUT:
                throw HTTPTransportError(.timedOut, "request timed out: \(message)")
            case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY,
                 CURLE_GOT_NOTHING, CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_PARTIAL_FILE,
                 CURLE_HTTP2, CURLE_HTTP2_STREAM, CURLE_SSL_CONNECT_ERROR:
                throw HTTPTransportError(.connectionFailed, "connection failed: \(message)")
            default:
                throw HTTPTransportError(.permanent, message)
            }
        }
        var status = 0
        _ = curlshim_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return HTTPResponse(status: status, headers: sink.headers, body: sink.body)
    }

    private func milliseconds(_ duration: Duration) -> Int {
        max(1, Int(duration.wholeMilliseconds))
    }
}
