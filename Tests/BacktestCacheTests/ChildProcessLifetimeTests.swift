import BacktestTestSupport
import Foundation
import Testing

/// Issue 18: a child a test starts must end with the test, and must not end before it.
@Suite("Child process lifetime", .timeLimit(.minutes(1)))
struct ChildProcessLifetimeTests {
    /// PR_SET_PDEATHSIG fires when the spawning *thread* exits: a server started from a worker
    /// thread that retires must keep serving (children are spawned from one long-lived thread).
    @Test func aServerStartedFromAThreadThatEndsKeepsServing() async throws {
        let redis = try await Self.startedOnAThreadThatEnds()
        defer { redis.stop() }
        // The parent-death signal, were it to come, comes as the thread exits; this is long after.
        try await Task.sleep(for: .milliseconds(300))
        #expect(redis.isRunning)
        #expect(RedisServerProcess.serverPID(port: redis.port) == redis.pid)
    }

    @Test func withRedisServerStopsItsServerWhenTheBodyThrows() async throws {
        struct Planned: Error {}
        var seen: (pid: Int32, port: Int)?
        await #expect(throws: Planned.self) {
            try await withRedisServer { redis in
                seen = (try #require(redis.pid), redis.port)
                throw Planned()
            }
        }
        let (pid, port) = try #require(seen)
        #expect(!Self.isAlive(pid))
        #expect(!RedisServerProcess.ping(port: port))
    }

    @Test func startingARunningServerAgainIsRefusedNotLeaked() throws {
        let redis = try RedisServerProcess()
        defer { redis.stop() }
        let pid = redis.pid
        #expect(throws: RedisServerError.self) { try redis.start() }
        #expect(redis.pid == pid)
        #expect(RedisServerProcess.serverPID(port: redis.port) == pid)
    }

    /// A test process killed outright (SIGKILL: no deinit, no defer) takes its redis-server with
    /// it. The probe executable plays the test process.
    @Test(.enabled(if: ChildProcess.diesWithParent, "needs setpriv (Linux util-linux)"))
    func killingTheProcessThatStartedAServerEndsTheServer() async throws {
        let here = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let probe = URL(fileURLWithPath: here).deletingLastPathComponent().appendingPathComponent("child-lifetime-probe")
        try #require(FileManager.default.isExecutableFile(atPath: probe.path),
                     "no \(probe.path): build it with swift build --build-tests")
        let process = Process()
        process.executableURL = probe
        var environment = ProcessInfo.processInfo.environment
        environment[ChildProcess.recordDirectoryVariable] = nil  // its redis is killed on purpose
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        let child = try ChildProcess.launch(process, owner: "ChildProcessLifetimeTests")
        let line = await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                var text = ""
                while !text.contains("\n") {
                    let data = output.fileHandleForReading.availableData
                    if data.isEmpty { break }
                    text += String(decoding: data, as: UTF8.self)
                }
                continuation.resume(returning: text)
            }
        }
        let fields = line.split(whereSeparator: \.isWhitespace)
        let pid = try #require(fields.first.flatMap { Int32($0) }, "probe printed \(line.debugDescription)")
        let port = try #require(fields.dropFirst().first.flatMap { Int($0) })
        #expect(RedisServerProcess.serverPID(port: port) == pid, "the probe's server runs while the probe does")

        kill(child.pid, SIGKILL)
        child.waitUntilExit()
        let deadline = ContinuousClock.now + .seconds(10)
        while Self.isAlive(pid) && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(!Self.isAlive(pid), "redis-server \(pid) outlived the process that started it")
        #expect(!RedisServerProcess.ping(port: port))
    }

    /// A server started on a thread of its own, which has returned by the time this does.
    static func startedOnAThreadThatEnds() async throws -> RedisServerProcess {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Result { try RedisServerProcess() })
            }
        }
    }

    /// Running (a zombie waiting for a reaper counts as gone).
    static func isAlive(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        return !stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }
}
