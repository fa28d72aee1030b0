import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A minimal HTTP/1.1 GET over a blocking socket on a thread of its own (never on the
/// cooperative pool), so a test sees the response's framing (chunked or not) and can hang up
/// mid-body, which URLSession does not let it do.
enum RawHTTPClient {
    struct Response: Sendable {
        /// The status line and headers, as sent.
        var head: String
        /// The body's chunks as framed by `Transfer-Encoding: chunked` (one element when the
        /// response was not chunked).
        var chunks: [Data]
        var isChunked: Bool
        var body: Data { chunks.reduce(into: Data()) { $0.append($1) } }

        func header(_ name: String) -> String? {
            for line in head.components(separatedBy: "\r\n").dropFirst() {
                let parts = line.split(separator: ":", maxSplits: 1)
                if parts.count == 2, parts[0].lowercased() == name.lowercased() { return parts[1].trimmingCharacters(in: .whitespaces) }
            }
            return nil
        }
    }

    enum Failure: Error { case connect(Int32), malformed(String) }

    /// GETs `path` from 127.0.0.1:`port` and reads the whole response (the server closes).
    static func get(port: Int, path: String) async throws -> Response {
        try await onThread {
            let fd = try connect(port: port, receiveBuffer: nil)
            defer { close(fd) }
            try send(fd, path: path)
            var data = Data()
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            while true {
                let n = read(fd, &buffer, buffer.count)
                if n <= 0 { break }
                data.append(contentsOf: buffer[0..<n])
            }
            return try parse(data)
        }
    }

    /// GETs `path`, reads the response's head and at most `bodyBytes` more, then closes the
    /// socket; returns the head. The receive buffer is small so the server cannot have written
    /// a large body before the hang-up.
    static func getAndHangUp(port: Int, path: String, bodyBytes: Int) async throws -> String {
        try await onThread {
            let fd = try connect(port: port, receiveBuffer: 4096)
            defer { close(fd) }
            try send(fd, path: path)
            var data = Data()
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = read(fd, &buffer, buffer.count)
                if n <= 0 { break }
                data.append(contentsOf: buffer[0..<n])
                if let end = data.range(of: Data("\r\n\r\n".utf8)), data.count - end.upperBound >= bodyBytes { break }
            }
            guard let end = data.range(of: Data("\r\n\r\n".utf8)) else { throw Failure.malformed("no head") }
            return String(decoding: data[..<end.lowerBound], as: UTF8.self)
        }
    }

    private static func onThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try work() }) }.start()
        }
    }

    private static func connect(port: Int, receiveBuffer: Int32?) throws -> Int32 {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw Failure.connect(errno) }
        if var size = receiveBuffer {
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { systemConnect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let code = errno
            close(fd)
            throw Failure.connect(code)
        }
        return fd
    }

    private static func send(_ fd: Int32, path: String) throws {
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw Failure.connect(errno) }
            sent += n
        }
    }

    /// Splits the head from the body and decodes a chunked body.
    static func parse(_ data: Data) throws -> Response {
        guard let end = data.range(of: Data("\r\n\r\n".utf8)) else { throw Failure.malformed("no head") }
        let head = String(decoding: data[..<end.lowerBound], as: UTF8.self)
        var response = Response(head: head, chunks: [], isChunked: false)
        let body = Data(data[end.upperBound...])
        guard response.header("Transfer-Encoding")?.lowercased() == "chunked" else {
            response.chunks = [body]
            return response
        }
        response.isChunked = true
        var position = body.startIndex
        while true {
            guard let lineEnd = body[position...].range(of: Data("\r\n".utf8)) else { throw Failure.malformed("chunk size") }
            let sizeText = String(decoding: body[position..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";")[0]
            guard let size = Int(sizeText, radix: 16) else { throw Failure.malformed("chunk size \(sizeText)") }
            position = lineEnd.upperBound
            if size == 0 { break }
            guard body.distance(from: position, to: body.endIndex) >= size + 2 else { throw Failure.malformed("truncated chunk") }
            response.chunks.append(Data(body[position..<body.index(position, offsetBy: size)]))
            position = body.index(position, offsetBy: size + 2)
        }
        return response
    }
}

#if canImport(Glibc)
private let systemConnect = Glibc.connect
#else
private let systemConnect = Darwin.connect
#endif
