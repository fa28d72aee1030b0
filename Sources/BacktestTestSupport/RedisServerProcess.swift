import Foundation

/// A real `redis-server` (from PATH) on a free loopback port, for tests that need Redis.
///
/// Started with persistence off unless a data directory is given. `stop()` shuts it down and
/// waits for exit; `start()` again reuses the same port, so clients see "Redis went away and came
/// back". `pause()`/`resume()` (SIGSTOP/SIGCONT) simulate a hung server.
///
/// Prefer `withRedisServer { redis in ... }`, which stops the server however the body ends. The
/// server is a `ChildProcess`: it also ends when this object is released, and (on Linux) when the
/// test process dies.
package final class RedisServerProcess: @unchecked Sendable {
    package let port: Int
    package let dataDirectory: URL?
    /// Who started it (the test), for scripts/test.sh's leak report.
    package let owner: String
    private let lock = NSLock()
    private var child: ChildProcess?

    /// Starts a server. `dataDirectory` enables RDB snapshots there (saved by `stop()`).
    ///
    /// - Parameters:
    ///   - owner: the test starting it, named by scripts/test.sh should the server outlive it;
    ///     by default "`fileID` `function`" of the caller (leave those two to their defaults).
    /// - Throws: `RedisServerError` when redis-server is missing or does not answer within 10 s.
    package init(dataDirectory: URL? = nil, owner: String? = nil, fileID: String = #fileID, function: String = #function) throws {
        self.port = try FreePort.loopback()
        self.dataDirectory = dataDirectory
        self.owner = owner ?? testOwner(fileID: fileID, function: function)
        try start()
    }

    deinit {
        // ChildProcess.deinit SIGKILLs and reaps it.
        child = nil
    }

    package var isRunning: Bool { lock.withLock { child?.isRunning ?? false } }

    /// The server's pid while it runs.
    package var pid: Int32? { lock.withLock { child?.pid } }

    /// Launches redis-server and waits (bounded) until it answers PING as itself.
    ///
    /// - Throws: `RedisServerError` when a server of this object is still running (`stop()` it
    ///   first: starting a second one would lose track of the first), or when the new one does not
    ///   answer within 10 s.
    package func start() throws {
        if let running = lock.withLock({ () -> ChildProcess? in self.child }), running.isRunning {
            throw RedisServerError("redis-server on port \(port) is already running (pid \(running.pid)); stop() it before start()")
        }
        var arguments = ["--port", String(port), "--bind", "127.0.0.1", "--appendonly", "no", "--loglevel", "warning"]
        if let dataDirectory {
            try FileManager.default.createDirectory(at: dataDirectory, withIntermediateDirectories: true)
            arguments += ["--dir", dataDirectory.path, "--dbfilename", "dump.rdb", "--save", "3600 1"]
        } else {
            arguments += ["--save", ""]
        }
        let process = Process()
        process.executableURL = try RedisServerProcess.executable()
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        let child = try ChildProcess.launch(process, owner: owner)
        lock.withLock { self.child = child }
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            // A PONG alone could come from another server that holds the port (ours then fails to
            // bind and exits): the answer must carry our pid.
            if let answering = RedisServerProcess.serverPID(port: port) {
                if answering == child.pid { return }
                break
            }
            if !child.isRunning { break }
            usleep(20_000)
        }
        child.terminate(signal: SIGKILL)
        lock.withLock { self.child = nil }
        throw RedisServerError("redis-server (pid \(child.pid)) did not answer on port \(port) within 10 s, or another process answered there")
    }

    /// Stops the server and waits for it to exit. With a data directory Redis first writes its
    /// snapshot (SHUTDOWN SAVE), so a restart finds the data.
    ///
    /// SHUTDOWN goes over the protocol rather than as SIGTERM because a child spawned from a test
    /// thread can inherit a signal mask that blocks SIGTERM; SIGKILL (unblockable) is the fallback.
    package func stop() {
        let child = lock.withLock { () -> ChildProcess? in
            defer { self.child = nil }
            return self.child
        }
        guard let child else { return }
        if child.isRunning {
            kill(child.pid, SIGCONT)
            _ = RedisServerProcess.send(dataDirectory == nil ? "SHUTDOWN NOSAVE\r\n" : "SHUTDOWN SAVE\r\n", port: port)
        }
        child.terminate(signal: nil, grace: .seconds(10))
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing is answered.
    package func pause() {
        if let pid { kill(pid, SIGSTOP) }
    }

    package func resume() {
        if let pid { kill(pid, SIGCONT) }
    }

    /// The port of a redis-server CI started for us (`BACKTESTD_REDIS_PORT`), if any.
    package static var externalPort: Int? {
        ProcessInfo.processInfo.environment["BACKTESTD_REDIS_PORT"].flatMap(Int.init)
    }

    /// A key prefix no other test (or test run) uses, so tests sharing one Redis never collide.
    package static func uniquePrefix(_ name: String) -> String {
        "test-\(name)-\(UUID().uuidString.prefix(8))"
    }

    private static func executable() throws -> URL {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/local/bin"] {
            let candidate = URL(fileURLWithPath: directory).appendingPathComponent("redis-server")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw RedisServerError("redis-server is not on PATH (apt-get install redis-server)")
    }

    /// Sends an inline PING over a plain socket; true on "+PONG".
    package static func ping(port: Int) -> Bool {
        send("PING\r\n", port: port)?.hasPrefix("+PONG") ?? false
    }

    /// The `process_id` a server on `port` reports in INFO (nil when nothing answers).
    package static func serverPID(port: Int) -> Int32? {
        let reply = send("INFO server\r\n", port: port, maxBytes: 8192) { $0.range(of: #"process_id:\d+\r\n"#, options: .regularExpression) != nil }
        guard let reply, let range = reply.range(of: #"process_id:\d+"#, options: .regularExpression) else { return nil }
        return Int32(reply[range].dropFirst("process_id:".count))
    }

    /// Sends one inline command and returns the start of the reply (nil when nothing came back):
    /// the first read, or more reads (up to `maxBytes`) until `complete` holds for the reply.
    static func send(_ request: String, port: Int, maxBytes: Int = 64, until complete: ((String) -> Bool)? = nil) -> String? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else { return nil }
        let bytes = Array(request.utf8)
        guard Foundation.send(fd, bytes, bytes.count, 0) == bytes.count else { return nil }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: maxBytes)
        repeat {
            let received = recv(fd, &buffer, maxBytes - reply.count, 0)
            guard received > 0 else { break }
            reply += buffer[0..<received]
        } while reply.count < maxBytes && !(complete?(String(decoding: reply, as: UTF8.self)) ?? true)
        return reply.isEmpty ? nil : String(decoding: reply, as: UTF8.self)
    }
}

/// Runs `body` with a redis-server of its own and stops the server however `body` ends (returns,
/// throws, or is cancelled). A crash of the test process ends the server too (`ChildProcess`).
///
/// - Parameters:
///   - dataDirectory: enables RDB snapshots there (see `RedisServerProcess`).
///   - owner: the test starting it, for the leak report; by default "`fileID` `function`" of the
///     caller (leave those two to their defaults).
/// - Throws: `RedisServerError` when the server does not start, and whatever `body` throws.
package func withRedisServer<R>(
    dataDirectory: URL? = nil, owner: String? = nil, fileID: String = #fileID, function: String = #function,
    isolation: isolated (any Actor)? = #isolation,
    _ body: (RedisServerProcess) async throws -> R
) async throws -> R {
    let redis = try RedisServerProcess(dataDirectory: dataDirectory, owner: owner ?? testOwner(fileID: fileID, function: function))
    defer { redis.stop() }
    return try await body(redis)
}

package struct RedisServerError: Error, CustomStringConvertible {
    package var description: String
    package init(_ description: String) { self.description = description }
}
