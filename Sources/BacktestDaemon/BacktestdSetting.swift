import Configuration

/// Every setting backtestd reads, named by its environment variable. README's configuration
/// table lists the same names; `BacktestdConfiguration` parses each of them, in one place.
///
/// The settings with a `flag` can also be given on the command line (`backtestd --port 9000`);
/// the flag wins over the variable, the variable over the default.
package enum BacktestdSetting: String, CaseIterable, Sendable {
    // Flags and variables.
    case host = "BACKTESTD_HOST"
    case port = "BACKTESTD_PORT"
    case maxFrameBytes = "BACKTESTD_MAX_FRAME_BYTES"
    case maxConcurrentStreams = "BACKTESTD_MAX_CONCURRENT_STREAMS"
    case maxRunningCalls = "BACKTESTD_MAX_RUNNING_CALLS"
    case maxConnections = "BACKTESTD_MAX_CONNECTIONS"
    case handshakeTimeoutMs = "BACKTESTD_HANDSHAKE_TIMEOUT_MS"
    case idleTimeoutMs = "BACKTESTD_IDLE_TIMEOUT_MS"
    case frameTimeoutMs = "BACKTESTD_FRAME_TIMEOUT_MS"
    case keepaliveMs = "BACKTESTD_KEEPALIVE_MS"
    case maxCallTimeoutMs = "BACKTESTD_MAX_CALL_TIMEOUT_MS"
    case maxOutputBufferBytes = "BACKTESTD_MAX_OUTPUT_BUFFER_BYTES"
    case decodeBudgetBytes = "BACKTESTD_DECODE_BUDGET_BYTES"
    case requestMemoryMb = "BACKTESTD_REQUEST_MEMORY_MB"
    case inboundMemoryMb = "BACKTESTD_INBOUND_MEMORY_MB"
    case inboundStallMs = "BACKTESTD_INBOUND_STALL_MS"
    case outputMemoryMb = "BACKTESTD_OUTPUT_MEMORY_MB"
    case drainTimeoutMs = "BACKTESTD_DRAIN_TIMEOUT_MS"
    case logLevel = "BACKTESTD_LOG_LEVEL"
    case dataSource = "BACKTESTD_DATA_SOURCE"
    case maxParallel = "BACKTESTD_MAX_PARALLEL"
    case batchRetentionSeconds = "BACKTESTD_BATCH_RETENTION_SECONDS"
    case batchRetentionMb = "BACKTESTD_BATCH_RETENTION_MB"
    case batchBudgetMb = "BACKTESTD_BATCH_BUDGET_MB"
    case batchQueue = "BACKTESTD_BATCH_QUEUE"
    case metricsPort = "BACKTESTD_METRICS_PORT"
    case httpPort = "BACKTESTD_HTTP_PORT"
    case variantDelayMs = "BACKTESTD_VARIANT_DELAY_MS"

    // Variables only.
    case useNewEngine = "USE_NEW_ENGINE"
    case cache = "BACKTESTD_CACHE"
    case redisURL = "REDIS_URL"
    case redisHost = "BACKTESTD_REDIS_HOST"
    case redisPort = "BACKTESTD_REDIS_PORT"
    case redisPassword = "BACKTESTD_REDIS_PASSWORD"
    case redisDB = "BACKTESTD_REDIS_DB"
    case redisPoolSize = "BACKTESTD_REDIS_POOL_SIZE"
    case redisConnectTimeoutMs = "BACKTESTD_REDIS_CONNECT_TIMEOUT_MS"
    case redisCommandTimeoutMs = "BACKTESTD_REDIS_COMMAND_TIMEOUT_MS"
    case cachePrefix = "BACKTESTD_CACHE_PREFIX"
    case cacheTTLSeconds = "BACKTESTD_CACHE_TTL_SECONDS"
    case cacheLocalMb = "BACKTESTD_CACHE_LOCAL_MB"
    case alpacaKeyID = "APCA_API_KEY_ID"
    case alpacaSecretKey = "APCA_API_SECRET_KEY"
    case alpacaDataURL = "APCA_API_DATA_URL"
    case alpacaFeed = "APCA_API_FEED"
    case alpacaSymbolsPerRequest = "BACKTESTD_ALPACA_SYMBOLS_PER_REQUEST"
    case alpacaRequestsPerMinute = "BACKTESTD_ALPACA_REQUESTS_PER_MINUTE"

    /// The environment variable.
    package var variable: String { rawValue }

    /// The command-line flag (`--max-frame-bytes`), for the settings that have one.
    package var flag: String? {
        switch self {
        case .host, .port, .maxFrameBytes, .maxConcurrentStreams, .maxRunningCalls, .maxConnections, .handshakeTimeoutMs, .idleTimeoutMs,
            .frameTimeoutMs, .keepaliveMs, .maxCallTimeoutMs, .maxOutputBufferBytes, .decodeBudgetBytes, .requestMemoryMb, .inboundMemoryMb, .inboundStallMs, .outputMemoryMb, .drainTimeoutMs,
            .logLevel, .dataSource, .maxParallel, .batchRetentionSeconds, .batchRetentionMb, .batchBudgetMb, .batchQueue, .metricsPort, .httpPort, .variantDelayMs:
            "--" + rawValue.dropFirst("BACKTESTD_".count).lowercased().replacing("_", with: "-")
        default:
            nil
        }
    }

    /// Values that must not appear in logs or error messages.
    package var isSecret: Bool {
        switch self {
        case .redisURL, .redisPassword, .alpacaKeyID, .alpacaSecretKey: true
        default: false
        }
    }

    /// The swift-configuration key: the variable's words, lower case, dot-separated
    /// (`backtestd.max.frame.bytes`). `EnvironmentVariablesProvider` maps it back to the variable.
    var key: ConfigKey { ConfigKey(rawValue.lowercased().split(separator: "_").map(String.init)) }
}
