import Foundation

/// A child process (redis-server, backtestd, python3, ...) whose life is tied to this process.
///
/// Three things keep a child from outliving the test that started it:
/// - its owner ends it: `terminate()`, `waitUntilExit()`, or `deinit` (SIGKILL, then wait);
/// - on Linux it is started through `setpriv --pdeathsig KILL` (util-linux), so the kernel sends it
///   SIGKILL when its parent dies, however the parent dies (a crash, SIGKILL, a timeout's kill).
///   The kernel's "parent" here is the *thread* that spawned the child (prctl(2),
///   PR_SET_PDEATHSIG): a child spawned from a Dispatch or cooperative-pool thread would be killed
///   as soon as that worker thread retires. So every child is spawned from one dedicated thread
///   that lives as long as the process (`SpawnThread`);
/// - when `BACKTESTD_TEST_CHILDREN` names a directory (scripts/test.sh sets it), the launch is
///   recorded there as a file named by the pid holding `<pid> <executable> <owner>`, and the file
///   is removed once the owner has seen the child exit. Whatever is left there after the run names
///   the test that leaked a child (scripts/test.sh checks it).
package final class ChildProcess: @unchecked Sendable {
    /// The running process (its pid is the child's: setpriv execs the real executable).
    package let process: Process
    /// Who started it, for the leak report: usually "<file> <test function>".
    package let owner: String
    private let record: URL?
    private let lock = NSLock()
    private var reaped = false

    /// The environment variable naming the directory of launch records.
    package static let recordDirectoryVariable = "BACKTESTD_TEST_CHILDREN"

    /// Starts `process` (configured with executable, arguments, environment and standard
    /// streams, not yet running) as a child tied to this process.
    ///
    /// - Parameter owner: who starts it (the test), written to the launch record.
    /// - Throws: what `Process.run()` throws (for example a missing executable).
    package static func launch(_ process: Process, owner: String) throws -> ChildProcess {
        guard let executable = process.executableURL else {
            throw RedisServerError("ChildProcess.launch: the process has no executableURL")
        }
        if let setpriv = parentDeathWrapper {
            process.arguments = ["--pdeathsig", "KILL", "--", executable.path] + (process.arguments ?? [])
            process.executableURL = setpriv
        }
        try SpawnThread.shared.run { try process.run() }
        let record = recordFile(pid: process.processIdentifier, executable: executable.lastPathComponent, owner: owner)
        return ChildProcess(process: process, owner: owner, record: record)
    }

    private init(process: Process, owner: String, record: URL?) {
        self.process = process
        self.owner = owner
        self.record = record
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGCONT)
            kill(process.processIdentifier, SIGKILL)
        }
        waitUntilExit()
    }

    package var pid: Int32 { process.processIdentifier }
    package var isRunning: Bool { process.isRunning }

    /// Blocks until the child has exited, then drops its launch record.
    package func waitUntilExit() {
        process.waitUntilExit()
        let first = lock.withLock { () -> Bool in
            defer { reaped = true }
            return !reaped
        }
        if first, let record { try? FileManager.default.removeItem(at: record) }
    }

    /// Sends `signal` (none when nil: the child was already asked to exit some other way), waits
    /// up to `grace` for the exit, then SIGKILLs and waits.
    /// A child spawned from a thread that blocks the signal may ignore SIGTERM; SIGKILL cannot be.
    package func terminate(signal: Int32? = SIGTERM, grace: Duration = .seconds(10)) {
        if process.isRunning {
            kill(pid, SIGCONT)
            if let signal { kill(pid, signal) }
            let deadline = ContinuousClock.now + grace
            while process.isRunning && ContinuousClock.now < deadline { usleep(10_000) }
            if process.isRunning { kill(pid, SIGKILL) }
        }
        waitUntilExit()
    }

    /// True where children get a parent-death signal (Linux with setpriv).
    package static var diesWithParent: Bool { parentDeathWrapper != nil }

    /// `setpriv` where it can set a parent-death signal (Linux util-linux); nil elsewhere, where
    /// children are only ended by their owners.
    static let parentDeathWrapper: URL? = {
        #if os(Linux)
        for path in ["/usr/bin/setpriv", "/bin/setpriv"] where FileManager.default.isExecutableFile(atPath: path) {
            return URL(fileURLWithPath: path)
        }
        #endif
        return nil
    }()

    private static func recordFile(pid: Int32, executable: String, owner: String) -> URL? {
        guard let path = ProcessInfo.processInfo.environment[recordDirectoryVariable], !path.isEmpty else { return nil }
        let directory = URL(fileURLWithPath: path, isDirectory: true)
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let file = directory.appendingPathComponent(String(pid))
        let line = "\(pid) \(executable) \(owner.replacingOccurrences(of: "\n", with: " "))\n"
        return FileManager.default.createFile(atPath: file.path, contents: Data(line.utf8)) ? file : nil
    }
}

/// A dedicated thread that spawns every child, alive for the whole process, so a child's
/// parent-death signal fires only when the process dies (see `ChildProcess`).
final class SpawnThread: @unchecked Sendable {
    static let shared = SpawnThread()

    private let condition = NSCondition()
    private var jobs: [() -> Void] = []

    private init() {
        let thread = Thread { [unowned self] in self.serve() }
        thread.name = "backtest-test-child-spawner"
        thread.start()
    }

    /// Runs `body` on the spawn thread and returns its result (blocks the caller meanwhile).
    func run<T>(_ body: @escaping () throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var outcome: Result<T, any Error>?
        condition.withLock {
            jobs.append {
                outcome = Result { try body() }
                done.signal()
            }
            condition.signal()
        }
        done.wait()
        return try outcome!.get()
    }

    private func serve() {
        while true {
            let job = condition.withLock { () -> () -> Void in
                while jobs.isEmpty { condition.wait() }
                return jobs.removeFirst()
            }
            job()
        }
    }
}

/// "<file> <function>" of a call site, the default owner of children started by tests.
package func testOwner(fileID: String, function: String) -> String {
    "\(fileID) \(function)"
}
