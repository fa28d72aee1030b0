import BacktestCache
import BacktestCore
import BacktestServer
import Configuration
import Logging
import MarketData
import NIOCore

/// Everything backtestd is configured with, read once at startup by the one configuration reader:
/// every `BacktestdSetting` is looked up through swift-configuration's provider hierarchy (the
/// command-line flags first, then the environment, then the default) and parsed here, nowhere
/// else. A value that cannot be used throws `BacktestdConfigurationError` naming the flag or the
/// variable it came from and what is allowed.
///
/// Empty values (and values of only spaces) count as unset. Settings of a part that is off are
/// not read: the `BACKTESTD_REDIS_*`/`BACKTESTD_CACHE_*` variables when `BACKTESTD_CACHE` is off,
/// the Alpaca ones unless the data source is `alpaca`.
package struct BacktestdConfiguration: Sendable {
    /// The transport's limits and timers (BacktestServer).
    package var server: ServerConfiguration
    package var logLevel: Logger.Level
    /// `--data-source`: demo, demo:SEED, alpaca or files:DIRECTORY.
    package var dataSource: MarketDataSource
    /// `USE_NEW_ENGINE`: false runs every request on the reference engine.
    package var useNewEngine: Bool
    /// Variants of a batch simulated at once.
    package var maxParallel: Int
    /// How long finished batches stay available to GetBatchStatus, in seconds.
    package var batchRetentionSeconds: Int
    /// Megabytes of FULL results finished batches may keep (summaries beyond it).
    package var batchRetentionMegabytes: Int
    /// Megabytes of results running and finished batches may hold together (estimated at
    /// admission); a batch that does not fit is refused with RESOURCE_EXHAUSTED.
    package var batchBudgetMegabytes: Int
    /// `--batch-queue`: batches that may wait for room in the batch memory budget at once.
    package var batchQueue: Int
    /// The Redis cache's settings; nil when `BACKTESTD_CACHE` turns the cache off.
    package var cache: Cache?
    /// The loopback port of the Prometheus `GET /metrics` endpoint; nil (the default) for none.
    package var metricsPort: Int?
    /// `--http-port`: the web dashboard's port (BacktestWeb), bound to `server.host` like the TCP
    /// port; nil (the default) for no dashboard.
    package var httpPort: Int?
    /// `--variant-delay-ms`: a pause before each variant result of a batch is recorded, for demos
    /// and browser tests that must watch a batch go from Partial to Final (a batch of 8 on demo
    /// data otherwise ends in milliseconds). 0, the default, for none; never use it in production.
    package var variantDelayMilliseconds: Int
    /// Where the host and port came from (`--port`, `BACKTESTD_PORT`, or nil for the default),
    /// for `bindFailure(_:)`.
    private var listenAddressSources: [BacktestdSetting: String?] = [:]

    /// The smallest `--max-output-buffer-bytes`: 64 KiB.
    package static let minimumOutputBufferBytes = 64 * 1024

    /// The largest value of a setting that SETTINGS carries as a u32 (bytes or milliseconds).
    package static let u32Max = Int(UInt32.max)

    /// The error for a listener that could not be bound, naming the flag or variable that chose
    /// the address: `--port 7001: address already in use`, `--host 999.1.1.1: not an address
    /// of this machine`. A value left at its default is named by both its flag and variable.
    package func bindFailure(_ error: ServerBindError) -> BacktestdConfigurationError {
        let setting: BacktestdSetting = error.isAboutHost ? .host : .port
        let value = error.isAboutHost ? error.host : "\(error.port)"
        let source: String
        switch listenAddressSources[setting] ?? nil {
        case let name? where name.hasPrefix("--"): source = "\(name) \(value)"
        case let name?: source = "\(name)=\(value)"
        case nil: source = "\(setting.flag ?? setting.variable) \(value) (the default; set \(setting.flag ?? "") or \(setting.variable))"
        }
        return BacktestdConfigurationError("\(source): \(error.reason)")
    }

    /// The cache's settings (docs/cache.md).
    package struct Cache: Sendable, Equatable {
        package var redis: RedisConfiguration
        package var options: CacheOptions

        package init(redis: RedisConfiguration, options: CacheOptions) {
            self.redis = redis
            self.options = options
        }
    }

    /// Reads the configuration.
    /// - Parameters:
    ///   - flags: the command-line values given, by setting (their text as typed).
    ///   - environment: the process environment (`ProcessInfo.processInfo.environment`).
    /// - Throws: `BacktestdConfigurationError` for the first value that cannot be used.
    package init(flags: [BacktestdSetting: String] = [:], environment: [String: String]) throws(BacktestdConfigurationError) {
        // A blank environment variable counts as unset (a common way to unset one); a blank flag
        // (`--port ''`) was given on purpose, and silently taking the default would hide a
        // mistake in a script.
        if let (setting, _) = flags.sorted(by: { $0.key.variable < $1.key.variable }).first(where: { $0.value.allSatisfy(\.isWhitespace) }) {
            throw BacktestdConfigurationError("\(setting.flag ?? setting.variable): an empty value is not allowed; give a value or leave the flag out")
        }
        let reader = SettingReader(flags: flags, environment: environment)
        var server = ServerConfiguration()
        server.host = reader.text(.host) ?? server.host
        server.port = try reader.integer(.port, in: 0...65535) ?? server.port
        // SETTINGS carries limits and times as u32; a frame limit must fit the protocol's own frames.
        server.maxFramePayload = try reader.integer(
            .maxFrameBytes, in: ServerConfiguration.minimumMaxFramePayload...Self.u32Max,
            why: "\(ServerConfiguration.minimumMaxFramePayload) is the smallest that fits the protocol's own frames: SETTINGS, GOAWAY, error RESPONSEs"
        ) ?? server.maxFramePayload
        server.maxConcurrentStreams = try reader.integer(.maxConcurrentStreams, in: 1...Int.max) ?? server.maxConcurrentStreams
        server.maxRunningCalls = try reader.integer(.maxRunningCalls, in: 1...Int.max) ?? server.maxRunningCalls
        server.maxConnections = try reader.integer(.maxConnections, in: 1...Int.max) ?? server.maxConnections
        server.handshakeTimeout = try reader.timeAmount(.handshakeTimeoutMs, in: 0...Self.u32Max) ?? server.handshakeTimeout
        server.idleTimeout = try reader.timeAmount(.idleTimeoutMs, in: 0...Self.u32Max) ?? server.idleTimeout
        server.frameTimeout = try reader.timeAmount(.frameTimeoutMs, in: 0...Self.u32Max) ?? server.frameTimeout
        server.keepaliveInterval = try reader.timeAmount(.keepaliveMs, in: 0...Self.u32Max) ?? server.keepaliveInterval
        // 0 would end every call at once (a call's own timeout_ms 0 means this maximum).
        server.maxCallTimeout = try reader.timeAmount(.maxCallTimeoutMs, in: 1...Self.u32Max) ?? server.maxCallTimeout
        // Below 64 KiB the protocol's own control frames (SETTINGS, PING answers, GOAWAY) have no
        // room beside the streams' output, and ordinary connections would be closed as not reading.
        server.maxOutboundBuffer = try reader.integer(
            .maxOutputBufferBytes, in: Self.minimumOutputBufferBytes...Int.max,
            why: "the streams' output and the control frames need room beside each other"
        ) ?? server.maxOutboundBuffer
        server.decodeLimits.memoryBudget = try reader.integer(.decodeBudgetBytes, in: 1...Int.max) ?? server.decodeLimits.memoryBudget
        if let megabytes = try reader.integer(.requestMemoryMb, in: 1...1_048_576) { server.requestMemoryBudget = megabytes * 1024 * 1024 }
        if let megabytes = try reader.integer(.inboundMemoryMb, in: 1...1_048_576) { server.inboundMemoryBudget = megabytes * 1024 * 1024 }
        server.inboundStallTimeout = try reader.timeAmount(.inboundStallMs, in: 0...Self.u32Max) ?? server.inboundStallTimeout
        if let megabytes = try reader.integer(.outputMemoryMb, in: 1...1_048_576) { server.outputMemoryBudget = megabytes * 1024 * 1024 }
        server.drainTimeout = try reader.timeAmount(.drainTimeoutMs, in: 0...Self.u32Max) ?? server.drainTimeout
        self.server = server
        listenAddressSources = [.host: reader.source(.host), .port: reader.source(.port)]

        logLevel = try reader.parse(.logLevel, allowed: "trace, debug, info, notice, warning, error or critical") {
            Logger.Level(rawValue: $0.lowercased())
        } ?? .info
        let sourceText = reader.text(.dataSource) ?? "demo"
        let source: MarketDataSource
        do {
            source = try MarketDataSource.parse(sourceText)
        } catch {
            throw reader.invalid(.dataSource, sourceText, allowed: "demo, demo:SEED (SEED a non-negative integer), alpaca or files:DIRECTORY")
        }
        if case .alpaca = source {
            dataSource = .alpaca(try Self.alpaca(reader))
        } else {
            dataSource = source
        }
        useNewEngine = try reader.switch(.useNewEngine) ?? true
        maxParallel = try reader.integer(.maxParallel, in: 1...Int.max) ?? 4
        batchRetentionSeconds = try reader.integer(.batchRetentionSeconds, in: 0...Int.max) ?? 600
        batchRetentionMegabytes = try reader.integer(.batchRetentionMb, in: 0...(Int.max >> 20)) ?? 128
        batchBudgetMegabytes = try reader.integer(.batchBudgetMb, in: 1...(Int.max >> 20)) ?? 192
        batchQueue = try reader.integer(.batchQueue, in: 0...100_000) ?? 64
        metricsPort = try reader.integer(.metricsPort, in: 0...65535)
        httpPort = try reader.integer(.httpPort, in: 0...65535)
        variantDelayMilliseconds = try reader.integer(.variantDelayMs, in: 0...60_000) ?? 0

        if try reader.switch(.cache) == false {
            cache = nil
        } else {
            cache = try Self.cache(reader)
        }
    }

    private static func cache(_ reader: SettingReader) throws(BacktestdConfigurationError) -> Cache {
        var redis: RedisConfiguration
        if let url = reader.text(.redisURL) {
            do {
                redis = try RedisConfiguration(url: url)
            } catch {
                throw BacktestdConfigurationError(error.message)
            }
        } else {
            redis = RedisConfiguration()
            redis.host = reader.text(.redisHost) ?? redis.host
            redis.port = try reader.integer(.redisPort, in: 1...65535) ?? redis.port
            redis.password = reader.text(.redisPassword) ?? redis.password
            redis.database = try reader.integer(.redisDB, in: 0...65535) ?? redis.database
        }
        redis.poolSize = try reader.integer(.redisPoolSize, in: 1...64) ?? redis.poolSize
        redis.connectTimeout = try reader.milliseconds(.redisConnectTimeoutMs, in: 1...60_000) ?? redis.connectTimeout
        redis.commandTimeout = try reader.milliseconds(.redisCommandTimeoutMs, in: 1...60_000) ?? redis.commandTimeout

        var options = CacheOptions()
        options.keyPrefix = reader.text(.cachePrefix) ?? options.keyPrefix
        if let seconds = try reader.integer(.cacheTTLSeconds, in: 60...31_536_000) { options.timeToLive = .seconds(seconds) }
        if let megabytes = try reader.integer(.cacheLocalMb, in: 0...65_536) { options.localCacheBytes = megabytes << 20 }
        return Cache(redis: redis, options: options)
    }

    private static func alpaca(_ reader: SettingReader) throws(BacktestdConfigurationError) -> AlpacaConfiguration {
        AlpacaConfiguration(
            keyID: reader.text(.alpacaKeyID), secretKey: reader.text(.alpacaSecretKey),
            baseURL: reader.text(.alpacaDataURL) ?? AlpacaConfiguration.defaultBaseURL,
            feed: reader.text(.alpacaFeed)?.lowercased() ?? AlpacaConfiguration.defaultFeed,
            maxSymbolsPerRequest: try reader.integer(.alpacaSymbolsPerRequest, in: 1...10_000) ?? 100,
            requestsPerMinute: try reader.integer(.alpacaRequestsPerMinute, in: 0...1_000_000) ?? 200)
    }
}

/// A configuration value backtestd cannot use; the message names the flag or variable and what
/// is allowed.
package struct BacktestdConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    package var message: String
    package init(_ message: String) { self.message = message }
    package var description: String { message }
}

/// Looks settings up through swift-configuration (flags, then environment) and turns their text
/// into values, with one error format for every setting.
private struct SettingReader {
    let reader: ConfigReader
    let flags: [BacktestdSetting: String]

    init(flags: [BacktestdSetting: String], environment: [String: String]) {
        self.flags = flags
        var values: [AbsoluteConfigKey: ConfigValue] = [:]
        for (setting, text) in flags {
            values[AbsoluteConfigKey(setting.key)] = ConfigValue(.string(text), isSecret: setting.isSecret)
        }
        let secrets = Set(BacktestdSetting.allCases.filter(\.isSecret).map(\.variable))
        reader = ConfigReader(providers: [
            InMemoryProvider(name: "flags", values: values),
            EnvironmentVariablesProvider(environmentVariables: environment, secretsSpecifier: .specific(secrets)),
        ])
    }

    /// The text of `setting`, trimmed; nil when unset or blank.
    func text(_ setting: BacktestdSetting) -> String? {
        guard let raw = reader.string(forKey: setting.key, isSecret: setting.isSecret) else { return nil }
        let trimmed = raw.trimmingSpaces
        return trimmed.isEmpty ? nil : trimmed
    }

    /// `setting` parsed by `parse`, nil when unset; throws naming `allowed` when `parse` fails.
    func parse<T>(_ setting: BacktestdSetting, allowed: String, _ parse: (String) -> T?) throws(BacktestdConfigurationError) -> T? {
        guard let text = text(setting) else { return nil }
        guard let value = parse(text) else { throw invalid(setting, text, allowed: allowed) }
        return value
    }

    /// - Parameter why: said after the allowed range, when the bound needs a reason.
    func integer(_ setting: BacktestdSetting, in range: ClosedRange<Int>, why: String? = nil) throws(BacktestdConfigurationError) -> Int? {
        var allowed =
            range.upperBound == Int.max
            ? (range.lowerBound == 0 ? "a non-negative integer" : "an integer of at least \(range.lowerBound)")
            : "an integer in \(range.lowerBound)...\(range.upperBound)"
        if let why { allowed += " (\(why))" }
        return try parse(setting, allowed: allowed) { text in Int(text).flatMap { range.contains($0) ? $0 : nil } }
    }

    /// Milliseconds within `range`, as NIO's `TimeAmount` (the server's timers).
    func timeAmount(_ setting: BacktestdSetting, in range: ClosedRange<Int>) throws(BacktestdConfigurationError) -> TimeAmount? {
        try parse(setting, allowed: "a number of milliseconds in \(range.lowerBound)...\(range.upperBound)") { text in
            Int(text).flatMap { range.contains($0) ? TimeAmount.milliseconds(Int64($0)) : nil }
        }
    }

    /// Where `setting` was given: its flag, its variable, or nil when neither (the default).
    func source(_ setting: BacktestdSetting) -> String? {
        guard text(setting) != nil else { return nil }
        return flags[setting] != nil ? (setting.flag ?? setting.variable) : setting.variable
    }

    /// Milliseconds within `range`, as a `Duration`.
    func milliseconds(_ setting: BacktestdSetting, in range: ClosedRange<Int>) throws(BacktestdConfigurationError) -> Duration? {
        try integer(setting, in: range).map { .milliseconds($0) }
    }

    /// On/off switches: true, 1, yes, on or false, 0, no, off, in any case.
    func `switch`(_ setting: BacktestdSetting) throws(BacktestdConfigurationError) -> Bool? {
        try parse(setting, allowed: "true, 1, yes, on or false, 0, no, off") { text in
            switch text.lowercased() {
            case "true", "1", "yes", "on": true
            case "false", "0", "no", "off": false
            default: nil
            }
        }
    }

    /// The error for `text` of `setting`: names the flag when the value came from it, else the
    /// variable; repeats at most 40 characters of the value, escaped, and never a secret.
    func invalid(_ setting: BacktestdSetting, _ text: String, allowed: String) -> BacktestdConfigurationError {
        let source = flags[setting] != nil ? (setting.flag ?? setting.variable) : setting.variable
        let shown = setting.isSecret ? "" : " \(String(text.prefix(40)).debugDescription)\(text.count > 40 ? "..." : "")"
        return BacktestdConfigurationError("\(source):\(shown) is not allowed; use \(allowed)")
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        var slice = Substring(self)
        while slice.first?.isWhitespace == true { slice.removeFirst() }
        while slice.last?.isWhitespace == true { slice.removeLast() }
        return String(slice)
    }
}
