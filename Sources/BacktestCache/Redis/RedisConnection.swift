import BacktestCore
import CHiredis
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One Redis command: its arguments as bytes, so keys and packed values are binary-safe.
package struct RedisCommand: Sendable {
    package var arguments: [[UInt8]]

    package init(_ arguments: [[UInt8]]) {
        self.arguments = arguments
    }

    package init(_ name: String, _ arguments: String...) {
        self.arguments = [Array(name.utf8)] + arguments.map { Array($0.utf8) }
    }
}

/// One blocking hiredis connection (`redisContext`).
///
/// Not thread-safe (hence `@unchecked Sendable`: only its ownership moves between threads): the pool hands a connection to one thread at a time, and every call blocks
/// that thread (never an event loop or the cooperative pool) for at most the command timeout.
/// Once hiredis reports an I/O or protocol error the context is unusable (`isBroken`); the pool
/// then drops it and connects afresh.
final class RedisConnection: @unchecked Sendable {
    private let context: UnsafeMutablePointer<redisContext>
    private(set) var isBroken = false

    /// Connects (bounded by `connectTimeout`), sets the command timeout, then AUTH / SELECT.
    init(configuration: RedisConfiguration) throws(RedisFailure) {
        let connectTimeout = RedisConnection.makeTimeval(configuration.connectTimeout)
        guard let context = redisConnectWithTimeout(configuration.host, Int32(configuration.port), connectTimeout) else {
            throw .unavailable("cannot allocate a hiredis context")
        }
        if context.pointee.err != 0 {
            let message = RedisConnection.errorString(context)
            redisFree(context)
            throw .unavailable("connect to \(configuration.host):\(configuration.port): \(message)")
        }
        self.context = context
        if redisSetTimeout(context, RedisConnection.makeTimeval(configuration.commandTimeout)) != REDIS_OK {
            redisFree(context)
            throw .unavailable("cannot set the command timeout")
        }
        do {
            if let password = configuration.password {
                var auth = [Array("AUTH".utf8)]
                if let user = configuration.username { auth.append(Array(user.utf8)) }
                auth.append(Array(password.utf8))
                try checkOK(execute(RedisCommand(auth)), "AUTH")
            }
            if configuration.database != 0 {
                try checkOK(execute(RedisCommand("SELECT", String(configuration.database))), "SELECT")
            }
        } catch {
            redisFree(context)
            throw error
        }
    }

    deinit {
        redisFree(context)
    }

    /// Sends one command and waits for its reply (`redisCommandArgv`).
    func execute(_ command: RedisCommand) throws(RedisFailure) -> RedisReply {
        let raw = withArgv(command) { argc, argv, lengths in
            redisCommandArgv(context, argc, argv, lengths)
        }
        guard let raw else { throw brokenConnection() }
        let reply = raw.assumingMemoryBound(to: redisReply.self)
        defer { freeReplyObject(raw) }
        return RedisReply(copying: reply)
    }

    /// Sends every command before reading any reply (`redisAppendCommandArgv` + `redisGetReply`):
    /// one round trip for the whole batch. Replies come back in command order.
    func pipeline(_ commands: [RedisCommand]) throws(RedisFailure) -> [RedisReply] {
        for command in commands {
            let status = withArgv(command) { argc, argv, lengths in
                redisAppendCommandArgv(context, argc, argv, lengths)
            }
            if status != REDIS_OK { throw brokenConnection() }
        }
        var replies: [RedisReply] = []
        replies.reserveCapacity(commands.count)
        for _ in commands {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReply(context, &raw) == REDIS_OK, let raw else { throw brokenConnection() }
            replies.append(RedisReply(copying: raw.assumingMemoryBound(to: redisReply.self)))
            freeReplyObject(raw)
        }
        return replies
    }

    private func checkOK(_ reply: RedisReply, _ what: String) throws(RedisFailure) {
        switch reply {
        case .error(let message): throw .unavailable("\(what) refused: \(message)")
        default: return
        }
    }

    private func brokenConnection() -> RedisFailure {
        isBroken = true
        return .unavailable(RedisConnection.errorString(context))
    }

    /// Lays out argv/argvlen for hiredis without copying the argument bytes more than once.
    private func withArgv<R>(
        _ command: RedisCommand,
        _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> R
    ) -> R {
        let count = command.arguments.count
        // One contiguous buffer for all arguments keeps the pointers valid for the whole call.
        var storage: [UInt8] = []
        storage.reserveCapacity(command.arguments.reduce(0) { $0 + $1.count } + 1)
        var offsets: [Int] = []
        offsets.reserveCapacity(count)
        for argument in command.arguments {
            offsets.append(storage.count)
            storage.append(contentsOf: argument)
        }
        storage.append(0)
        let lengths = command.arguments.map { $0.count }
        return storage.withUnsafeBufferPointer { bytes in
            let base = UnsafeRawPointer(bytes.baseAddress!).assumingMemoryBound(to: CChar.self)
            var argv: [UnsafePointer<CChar>?] = offsets.map { base + $0 }
            return argv.withUnsafeMutableBufferPointer { argvBuffer in
                lengths.withUnsafeBufferPointer { lengthBuffer in
                    body(Int32(count), argvBuffer.baseAddress!, lengthBuffer.baseAddress!)
                }
            }
        }
    }

    private static func errorString(_ context: UnsafeMutablePointer<redisContext>) -> String {
        let message = withUnsafeBytes(of: context.pointee.errstr) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        return message.isEmpty ? "connection error \(context.pointee.err)" : message
    }

    private static func makeTimeval(_ duration: Duration) -> timeval {
        let micros = duration.wholeMicroseconds
        return timeval(tv_sec: .init(micros / 1_000_000), tv_usec: .init(micros % 1_000_000))
    }
}
