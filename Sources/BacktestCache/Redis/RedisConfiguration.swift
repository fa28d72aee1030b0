/// Where the cache's Redis is and how patient to be with it.
///
/// Read from the environment by `init(environment:)` (see docs/cache.md):
///
/// - `REDIS_URL`: `redis://[[user]:password@]host[:port][/db]`; wins over the variables below.
/// - `BACKTESTD_REDIS_HOST` (default 127.0.0.1), `BACKTESTD_REDIS_PORT` (6379),
///   `BACKTESTD_REDIS_PASSWORD`, `BACKTESTD_REDIS_DB` (0).
/// - `BACKTESTD_REDIS_POOL_SIZE` (4), `BACKTESTD_REDIS_CONNECT_TIMEOUT_MS` (500),
///   `BACKTESTD_REDIS_COMMAND_TIMEOUT_MS` (1000), `BACKTESTD_CACHE_PREFIX` ("backtestd"),
///   `BACKTESTD_CACHE_TTL_SECONDS` (86400), `BACKTESTD_CACHE_LOCAL_MB` (256),
///   `BACKTESTD_CACHE` = `off` disables the cache entirely.
package struct RedisConfiguration: Sendable, Equatable {
    package var host: String
    package var port: Int
    package var username: String?
    package var password: String?
    package var database: Int
    /// Connections (and threads running blocking hiredis calls).
    package var poolSize: Int
    package var connectTimeout: Duration
    /// Bounds every command, so a hung Redis cannot stall a request for longer.
    package var commandTimeout: Duration
    /// First wait after Redis became unreachable before one call probes it again; doubles on
    /// every failed probe up to `maximumBackoff`. Calls in between fail fast (treated as misses).
    package var initialBackoff: Duration
    package var maximumBackoff: Duration

    package init(
        host: String = "127.0.0.1", port: Int = 6379, username: String? = nil, password: String? = nil,
        database: Int = 0, poolSize: Int = 4, connectTimeout: Duration = .milliseconds(500),
        commandTimeout: Duration = .milliseconds(1000), initialBackoff: Duration = .milliseconds(100),
        maximumBackoff: Duration = .seconds(10)
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.poolSize = max(1, poolSize)
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.initialBackoff = initialBackoff
        self.maximumBackoff = maximumBackoff
    }

    /// Reads the variables listed on the type. Throws a message naming the bad variable.
    package init(environment: [String: String]) throws(CacheConfigurationError) {
        self.init()
        if let url = environment["REDIS_URL"], !url.isEmpty {
            try apply(url: url)
        } else {
            if let host = environment["BACKTESTD_REDIS_HOST"], !host.isEmpty { self.host = host }
            if let text = environment["BACKTESTD_REDIS_PORT"] { port = try Self.integer(text, "BACKTESTD_REDIS_PORT", 1...65535) }
            if let password = environment["BACKTESTD_REDIS_PASSWORD"], !password.isEmpty { self.password = password }
            if let text = environment["BACKTESTD_REDIS_DB"] { database = try Self.integer(text, "BACKTESTD_REDIS_DB", 0...65535) }
        }
        if let text = environment["BACKTESTD_REDIS_POOL_SIZE"] { poolSize = try Self.integer(text, "BACKTESTD_REDIS_POOL_SIZE", 1...64) }
        if let text = environment["BACKTESTD_REDIS_CONNECT_TIMEOUT_MS"] {
            connectTimeout = .milliseconds(try Self.integer(text, "BACKTESTD_REDIS_CONNECT_TIMEOUT_MS", 1...60_000))
        }
        if let text = environment["BACKTESTD_REDIS_COMMAND_TIMEOUT_MS"] {
            commandTimeout = .milliseconds(try Self.integer(text, "BACKTESTD_REDIS_COMMAND_TIMEOUT_MS", 1...60_000))
        }
    }

    private mutating func apply(url: String) throws(CacheConfigurationError) {
        let bad = CacheConfigurationError("REDIS_URL '\(url)' is not redis://[[user]:password@]host[:port][/db]")
        guard url.hasPrefix("redis://") else { throw bad }
        var rest = Substring(url.dropFirst("redis://".count))
        if let slash = rest.firstIndex(of: "/") {
            let db = rest[rest.index(after: slash)...]
            if !db.isEmpty {
                guard let value = Int(db), value >= 0 else { throw bad }
                database = value
            }
            rest = rest[..<slash]
        }
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            if let colon = credentials.firstIndex(of: ":") {
                let user = credentials[..<colon]
                username = user.isEmpty ? nil : String(user)
                password = String(credentials[credentials.index(after: colon)...])
            } else {
                password = String(credentials)
            }
            rest = rest[rest.index(after: at)...]
        }
        if let colon = rest.lastIndex(of: ":") {
            guard let value = Int(rest[rest.index(after: colon)...]), (1...65535).contains(value) else { throw bad }
            port = value
            rest = rest[..<colon]
        }
        guard !rest.isEmpty else { throw bad }
        host = String(rest)
    }

    static func integer(_ text: String, _ name: String, _ range: ClosedRange<Int>) throws(CacheConfigurationError) -> Int {
        guard let value = Int(text), range.contains(value) else {
            throw CacheConfigurationError("\(name) '\(text)' must be an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }
}

/// A cache setting that cannot be used, with the variable at fault in the message.
package struct CacheConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    package var message: String
    package init(_ message: String) { self.message = message }
    package var description: String { message }
}
