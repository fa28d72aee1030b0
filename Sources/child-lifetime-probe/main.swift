// A stand-in for a test process, for ChildProcessLifetimeTests: starts a redis-server through
// BacktestTestSupport (from a thread that then ends, as a test's worker thread may), prints
// "<redis pid> <port>" and waits to be killed. The test SIGKILLs it and expects the redis-server
// to die with it.
import BacktestTestSupport
import Foundation

nonisolated(unsafe) var started: RedisServerProcess?
nonisolated(unsafe) var failure: (any Error)?
let done = DispatchSemaphore(value: 0)
Thread.detachNewThread {
    do { started = try RedisServerProcess(owner: "child-lifetime-probe") } catch { failure = error }
    done.signal()
}
done.wait()
guard let redis = started, let pid = redis.pid else {
    FileHandle.standardError.write(Data("child-lifetime-probe: \(failure.map { "\($0)" } ?? "no server")\n".utf8))
    exit(1)
}
FileHandle.standardOutput.write(Data("\(pid) \(redis.port)\n".utf8))
while true { sleep(60) }
