import Foundation

/// A real `redis-server` (from PATH) on a free loopback port, for tests that need Redis.
///
/// Started with persistence off unless a data directory is given. `stop()` shuts it down and
/// waits for exit; `start()` again reuses the same port, so clients see "Redis went away and came
/// back". `pause()`/`resume()` (SIGSTOP/SIGCONT) simulate a hung server.
public final class RedisServerProcess: @unchecked Sendable {
    public let port: Int
    public let dataDirectory: URL?
    private let lock = NSLock()
    private var process: Process?

    /// Starts a server. `dataDirectory` enables RDB snapshots there (saved by `stop()`).
    public init(dataDirectory: URL? = nil) throws {
        self.port = try RedisServerProcess.freeLoopbackPort()
        self.dataDirectory = dataDirectory
        try start()
    }

    deinit {
        if let process, process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    public var isRunning: Bool { lock.withLock { process?.isRunning ?? false } }

    /// Launches redis-server and waits (bounded) until it answers PING.
    public func start() throws {
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
        try process.run()
        lock.withLock { self.process = process }
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if RedisServerProcess.ping(port: port) { return }
            if !process.isRunning { break }
            usleep(20_000)
        }
        kill(process.processIdentifier, SIGKILL)
        throw RedisServerError("redis-server on port \(port) did not answer PING within 10 s")
    }

    /// Stops the server and waits for it to exit. With a data directory Redis first writes its
    /// snapshot (SHUTDOWN SAVE), so a restart finds the data.
    ///
    /// SHUTDOWN goes over the protocol rather than as SIGTERM because a child spawned from a test
    /// thread can inherit a signal mask that blocks SIGTERM; SIGKILL (unblockable) is the fallback.
    public func stop() {
        let process = lock.withLock { () -> Process? in
            defer { self.process = nil }
            return self.process
        }
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGCONT)
        _ = RedisServerProcess.send(dataDirectory == nil ? "SHUTDOWN NOSAVE\r\n" : "SHUTDOWN SAVE\r\n", port: port)
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing is answered.
    public func pause() {
        if let pid = lock.withLock({ process?.processIdentifier }) { kill(pid, SIGSTOP) }
    }

    public func resume() {
        if let pid = lock.withLock({ process?.processIdentifier }) { kill(pid, SIGCONT) }
    }

    /// A port the kernel just handed out on 127.0.0.1 (bind to 0, read it back, close).
    public static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RedisServerError("socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw RedisServerError("cannot bind a loopback port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// The port of a redis-server CI started for us (`BACKTESTD_REDIS_PORT`), if any.
    public static var externalPort: Int? {
        ProcessInfo.processInfo.environment["BACKTESTD_REDIS_PORT"].flatMap(Int.init)
    }

    /// A key prefix no other test (or test run) uses, so tests sharing one Redis never collide.
    public static func uniquePrefix(_ name: String) -> String {
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
    static func ping(port: Int) -> Bool {
        send("PING\r\n", port: port)?.hasPrefix("+PONG") ?? false
    }

    /// Sends one inline command and returns the start of the reply (nil when nothing came back).
    static func send(_ request: String, port: Int) -> String? {
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
        var buffer = [UInt8](repeating: 0, count: 64)
        let received = recv(fd, &buffer, buffer.count, 0)
        return received > 0 ? String(decoding: buffer[0..<received], as: UTF8.self) : nil
    }
}

public struct RedisServerError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
