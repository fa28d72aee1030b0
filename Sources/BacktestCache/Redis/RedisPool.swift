import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A few hiredis connections, used from a dedicated thread pool so blocking calls never run on
/// an event loop or Swift's cooperative pool.
///
/// Failure policy (a circuit breaker): when a call finds Redis unreachable, every idle
/// connection is dropped and the pool is "open" for a backoff (100 ms, doubling to 10 s): calls
/// then fail at once with `.unavailable` instead of waiting a connect timeout each, and callers
/// treat that as a cache miss. After the backoff the first call to arrive starts one probe
/// (a PING in the background) and fails fast itself, like every call while the probe runs: a
/// hung Redis costs at most one command timeout at a time, paid by the probe, never by a
/// request. If the probe works the pool closes again and connections are re-created on demand.
/// Each change of state is logged once.
package final class RedisPool: Sendable {
    package let configuration: RedisConfiguration
    private let threadPool: NIOThreadPool
    private let state: NIOLockedValueBox<State>
    private let logger: Logger

    private enum Breaker {
        case closed
        case open(retryAt: ContinuousClock.Instant, backoff: Duration)
        /// One call is testing Redis; the others fail fast until it reports.
        case probing(backoff: Duration)
    }

    private struct State {
        var idle: [RedisConnection] = []
        var breaker: Breaker = .closed
        var isShutDown = false
        /// Calls of requests let through to Redis, and background probes started (for tests
        /// and figures: a hung Redis must not see requests' calls while the breaker is open).
        var admittedCalls = 0
        var probesStarted = 0
    }

    /// Calls let through to Redis so far (probes not included).
    var admittedCalls: Int { state.withLockedValue { $0.admittedCalls } }
    /// Background probes started so far.
    var probesStarted: Int { state.withLockedValue { $0.probesStarted } }

    package init(configuration: RedisConfiguration, logger: Logger = Logger(label: "backtestd.cache.redis")) {
        self.configuration = configuration
        self.logger = logger
        self.threadPool = NIOThreadPool(numberOfThreads: configuration.poolSize)
        self.state = NIOLockedValueBox(State())
        threadPool.start()
    }

    /// True while calls fail fast because Redis was found unreachable.
    package var isAvailable: Bool {
        state.withLockedValue { if case .closed = $0.breaker { true } else { false } }
    }

    /// Closes every connection and stops the threads. Calls made afterwards fail as unavailable.
    package func shutdown() async {
        state.withLockedValue {
            $0.isShutDown = true
            $0.idle.removeAll()
        }
        try? await threadPool.shutdownGracefully()
    }

    /// Starts the background probe: a PING on a pool thread. It closes the breaker when it works
    /// and re-opens it with a doubled backoff when it does not.
    private func startProbe() {
        Task { [self] in
            do {
                _ = try await threadPool.runIfActive { [self] in
                    try self.runOnThread({ connection throws(RedisFailure) in try connection.execute(RedisCommand("PING")) }, isProbe: true)
                }
            } catch is RedisFailure {
                // runOnThread has re-opened the breaker with a longer backoff.
            } catch {
                reopen(after: .unavailable("cache shut down"), wasProbe: true)
            }
        }
    }

    package func execute(_ command: RedisCommand) async throws(RedisFailure) -> RedisReply {
        try await withConnection { connection throws(RedisFailure) in try connection.execute(command) }
    }

    /// One round trip for the whole batch (hiredis pipelining).
    package func pipeline(_ commands: [RedisCommand]) async throws(RedisFailure) -> [RedisReply] {
        if commands.isEmpty { return [] }
        return try await withConnection { connection throws(RedisFailure) in try connection.pipeline(commands) }
    }

    /// Runs `work` with a connection on one of the pool's threads.
    func withConnection<T: Sendable>(
        _ work: @escaping @Sendable (RedisConnection) throws(RedisFailure) -> T
    ) async throws(RedisFailure) -> T {
        try admit()
        do {
            return try await threadPool.runIfActive { [self] in
                try self.runOnThread(work, isProbe: false)
            }
        } catch let failure as RedisFailure {
            throw failure
        } catch {
            // The thread pool is shut down.
            throw .unavailable("cache is shut down")
        }
    }

    /// Decides, without blocking, whether a call may go to Redis. When the backoff is over it
    /// starts the background probe, and this call fails fast like the others.
    private func admit() throws(RedisFailure) {
        let now = ContinuousClock.now
        let verdict: Result<Bool, RedisFailure> = state.withLockedValue { state -> Result<Bool, RedisFailure> in
            if state.isShutDown { return .failure(.unavailable("cache is shut down")) }
            switch state.breaker {
            case .closed:
                state.admittedCalls += 1
                return .success(false)
            case .open(let retryAt, let backoff):
                guard now >= retryAt else { return .failure(.unavailable("Redis is down (retrying later)")) }
                state.breaker = .probing(backoff: backoff)
                state.probesStarted += 1
                return .success(true)
            case .probing:
                return .failure(.unavailable("Redis is down (a reconnect is in progress)"))
            }
        }
        if try verdict.get() {
            startProbe()
            throw .unavailable("Redis is down (a reconnect is in progress)")
        }
    }

    private func runOnThread<T>(
        _ work: (RedisConnection) throws(RedisFailure) -> T, isProbe: Bool
    ) throws(RedisFailure) -> T {
        let connection: RedisConnection
        do throws(RedisFailure) {
            if let idle = state.withLockedValue({ $0.idle.popLast() }) {
                connection = idle
            } else {
                connection = try RedisConnection(configuration: configuration)
            }
        } catch {
            reopen(after: error, wasProbe: isProbe)
            throw error
        }
        do {
            let result = try work(connection)
            release(connection, wasProbe: isProbe)
            return result
        } catch {
            if connection.isBroken {
                reopen(after: error, wasProbe: isProbe)
            } else {
                release(connection, wasProbe: isProbe)
            }
            throw error
        }
    }

    private func release(_ connection: RedisConnection, wasProbe: Bool) {
        let recovered = state.withLockedValue { state -> Bool in
            if !state.isShutDown, state.idle.count < configuration.poolSize { state.idle.append(connection) }
            if case .closed = state.breaker { return false }
            state.breaker = .closed
            return true
        }
        if recovered {
            logger.notice("Redis at \(configuration.host):\(configuration.port) is reachable again; cache in use")
        }
    }

    /// Redis failed: drop every idle connection (they point at the same dead server) and open.
    private func reopen(after failure: RedisFailure, wasProbe: Bool) {
        let now = ContinuousClock.now
        let wasClosed = state.withLockedValue { state -> Bool in
            state.idle.removeAll()
            switch state.breaker {
            case .closed:
                state.breaker = .open(retryAt: now + configuration.initialBackoff, backoff: configuration.initialBackoff)
                return true
            case .probing(let backoff), .open(_, let backoff):
                let next = wasProbe ? min(backoff * 2, configuration.maximumBackoff) : backoff
                state.breaker = .open(retryAt: now + next, backoff: next)
                return false
            }
        }
        if wasClosed {
            logger.warning("\(failure); continuing without the cache (backtests fetch from the source)")
        }
    }
}
