/// Where the cache's Redis is and how patient to be with it.
///
/// backtestd fills it from `REDIS_URL` or the `BACKTESTD_REDIS_*` variables (docs/cache.md);
/// they are parsed in one place, `BacktestdConfiguration` (BacktestDaemon).
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

    /// The settings of a `redis://[[user]:password@]host[:port][/db]` URL (`REDIS_URL`), the
    /// other fields at their defaults. Throws when `url` is not of that form; the message does
    /// not repeat the URL, which may hold a password.
    package init(url: String) throws(CacheConfigurationError) {
        self.init()
        try apply(url: url)
    }

    private mutating func apply(url: String) throws(CacheConfigurationError) {
        let bad = CacheConfigurationError("REDIS_URL is not redis://[[user]:password@]host[:port][/db] (port 1...65535, db a non-negative integer)")
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
}

/// A cache setting that cannot be used, with the variable at fault in the message.
package struct CacheConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    package var message: String
    package init(_ message: String) { self.message = message }
    package var description: String { message }
}
