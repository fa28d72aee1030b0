import ArgumentParser
import BacktestProtocol
import BacktestServer
import BacktestService
import Logging
import NIOCore
import ServiceLifecycle

/// backtestd: serves the backtest protocol (PROTOCOL.md) on TCP, 127.0.0.1:50051 by default.
///
/// Every option can also come from an environment variable (the flag wins): BACKTESTD_HOST,
/// BACKTESTD_PORT, BACKTESTD_MAX_FRAME_BYTES, ... (the flag name upper-cased with underscores).
/// SIGTERM or SIGINT shut down gracefully: GOAWAY, in-flight calls finish, then exit.
@main
struct Backtestd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backtestd",
        abstract: "Backtesting server speaking length-prefixed protobuf frames over TCP.",
        discussion: "Each option may also be set with the environment variable BACKTESTD_<OPTION> (e.g. BACKTESTD_PORT).")

    @Option(help: "Address to bind (env BACKTESTD_HOST). Default 127.0.0.1; use 0.0.0.0 to expose the server.")
    var host: String?
    @Option(help: "TCP port (env BACKTESTD_PORT). Default 50051; 0 picks a free port.")
    var port: Int?
    @Option(help: "Largest frame payload in bytes (env BACKTESTD_MAX_FRAME_BYTES). Default 4194304.")
    var maxFrameBytes: Int?
    @Option(help: "Calls in flight per connection (env BACKTESTD_MAX_CONCURRENT_STREAMS). Default 256.")
    var maxConcurrentStreams: Int?
    @Option(help: "Open connections (env BACKTESTD_MAX_CONNECTIONS). Default 1024.")
    var maxConnections: Int?
    @Option(help: "Time to send the preface, ms (env BACKTESTD_HANDSHAKE_TIMEOUT_MS). Default 5000.")
    var handshakeTimeoutMs: Int64?
    @Option(help: "Close connections idle this long, ms (env BACKTESTD_IDLE_TIMEOUT_MS). Default 300000.")
    var idleTimeoutMs: Int64?
    @Option(help: "Time for a started frame to arrive whole, ms (env BACKTESTD_FRAME_TIMEOUT_MS). Default 10000.")
    var frameTimeoutMs: Int64?
    @Option(help: "PING interval while calls run, ms; 0 disables (env BACKTESTD_KEEPALIVE_MS). Default 30000.")
    var keepaliveMs: Int64?
    @Option(help: "Upper bound of a call's deadline, ms (env BACKTESTD_MAX_CALL_TIMEOUT_MS). Default 600000.")
    var maxCallTimeoutMs: Int64?
    @Option(help: "Output bytes buffered per connection before it is dropped (env BACKTESTD_MAX_OUTPUT_BUFFER_BYTES). Default 8388608.")
    var maxOutputBufferBytes: Int?
    @Option(help: "Memory one request may take once decoded, bytes (env BACKTESTD_DECODE_BUDGET_BYTES). Default 67108864.")
    var decodeBudgetBytes: Int?
    @Option(help: "Time in-flight calls get on shutdown, ms (env BACKTESTD_DRAIN_TIMEOUT_MS). Default 30000.")
    var drainTimeoutMs: Int64?
    @Option(help: "trace, debug, info, notice, warning, error or critical (env BACKTESTD_LOG_LEVEL). Default info.")
    var logLevel: String?
    @Option(help: "Market data: demo, demo:SEED, alpaca, or files:DIRECTORY (env BACKTESTD_DATA_SOURCE). Default demo.")
    var dataSource: String?
    @Option(help: "Variants of a batch simulated at once (env BACKTESTD_MAX_PARALLEL). Default 4.")
    var maxParallel: Int?
    @Option(help: "How long finished batches stay available to GetBatchStatus, s (env BACKTESTD_BATCH_RETENTION_SECONDS). Default 600.")
    var batchRetentionSeconds: Int?

    @Option(help: "Megabytes of results finished batches may keep; beyond it the oldest are dropped before their retention time (env BACKTESTD_BATCH_RETENTION_MB, default 128).")
    var batchRetentionMb: Int?

    @Option(help: "Serve Prometheus metrics on http://127.0.0.1:PORT/metrics (env BACKTESTD_METRICS_PORT). Default off.")
    var metricsPort: Int?

    func run() async throws {
        let environment = Environment()
        let levelName = try environment.resolve(logLevel, "BACKTESTD_LOG_LEVEL", "--log-level") { $0 } ?? "info"
        guard let level = Logger.Level(rawValue: levelName) else {
            throw ValidationError("log level '\(levelName)' is not one of trace, debug, info, notice, warning, error, critical")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "backtestd")
        let configuration = try makeConfiguration(environment)

        let parallel = try environment.resolve(maxParallel, "BACKTESTD_MAX_PARALLEL", "--max-parallel") { Int($0) } ?? 4
        let retention = try environment.resolve(batchRetentionSeconds, "BACKTESTD_BATCH_RETENTION_SECONDS", "--batch-retention-seconds") { Int($0) } ?? 600
        let retentionMB = try environment.resolve(batchRetentionMb, "BACKTESTD_BATCH_RETENTION_MB", "--batch-retention-mb") { Int($0) } ?? 128
        guard parallel > 0, retention >= 0, retentionMB >= 0 else {
            throw ValidationError("--max-parallel must be positive, --batch-retention-seconds and --batch-retention-mb not negative")
        }
        let domain = try DomainSetup.make(
            dataSource: try environment.resolve(dataSource, "BACKTESTD_DATA_SOURCE", "--data-source") { $0 } ?? "demo",
            maxParallel: parallel, batchRetention: (seconds: retention, megabytes: retentionMB),
            maxFramePayload: configuration.maxFramePayload, serverVersion: configuration.serverVersion,
            environment: environment.values, logger: logger)

        var service: any BacktestService = domain.service
        var services = domain.services
        if let port = try environment.resolve(metricsPort, "BACKTESTD_METRICS_PORT", "--metrics-port", parse: { Int($0) }) {
            guard (0...65535).contains(port) else { throw ValidationError("--metrics-port must be 0...65535, not \(port)") }
            let metrics = ServerMetrics(cache: domain.service.pipeline.cache)
            service = MeteredBacktestService(domain.service, metrics: metrics)
            services.append(MetricsHTTPService(metrics: metrics, port: port, logger: logger))
        }
        let server = BacktestServer(configuration: configuration, service: service, logger: logger)
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [.init(service: server)] + services.map { .init(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    private func makeConfiguration(_ env: Environment) throws -> ServerConfiguration {
        var c = ServerConfiguration()
        c.host = try env.resolve(host, "BACKTESTD_HOST", "--host") { $0 } ?? c.host
        c.port = try env.resolve(port, "BACKTESTD_PORT", "--port") { Int($0) } ?? c.port
        c.maxFramePayload = try env.resolve(maxFrameBytes, "BACKTESTD_MAX_FRAME_BYTES", "--max-frame-bytes") { Int($0) } ?? c.maxFramePayload
        c.maxConcurrentStreams = try env.resolve(maxConcurrentStreams, "BACKTESTD_MAX_CONCURRENT_STREAMS", "--max-concurrent-streams") { Int($0) } ?? c.maxConcurrentStreams
        c.maxConnections = try env.resolve(maxConnections, "BACKTESTD_MAX_CONNECTIONS", "--max-connections") { Int($0) } ?? c.maxConnections
        c.handshakeTimeout = try env.millis(handshakeTimeoutMs, "BACKTESTD_HANDSHAKE_TIMEOUT_MS", "--handshake-timeout-ms") ?? c.handshakeTimeout
        c.idleTimeout = try env.millis(idleTimeoutMs, "BACKTESTD_IDLE_TIMEOUT_MS", "--idle-timeout-ms") ?? c.idleTimeout
        c.frameTimeout = try env.millis(frameTimeoutMs, "BACKTESTD_FRAME_TIMEOUT_MS", "--frame-timeout-ms") ?? c.frameTimeout
        c.keepaliveInterval = try env.millis(keepaliveMs, "BACKTESTD_KEEPALIVE_MS", "--keepalive-ms") ?? c.keepaliveInterval
        c.maxCallTimeout = try env.millis(maxCallTimeoutMs, "BACKTESTD_MAX_CALL_TIMEOUT_MS", "--max-call-timeout-ms") ?? c.maxCallTimeout
        c.maxOutboundBuffer = try env.resolve(maxOutputBufferBytes, "BACKTESTD_MAX_OUTPUT_BUFFER_BYTES", "--max-output-buffer-bytes") { Int($0) } ?? c.maxOutboundBuffer
        c.decodeLimits.memoryBudget = try env.resolve(decodeBudgetBytes, "BACKTESTD_DECODE_BUDGET_BYTES", "--decode-budget-bytes") { Int($0) } ?? c.decodeLimits.memoryBudget
        c.drainTimeout = try env.millis(drainTimeoutMs, "BACKTESTD_DRAIN_TIMEOUT_MS", "--drain-timeout-ms") ?? c.drainTimeout
        guard (0...65535).contains(c.port) else { throw ValidationError("--port must be 0...65535, not \(c.port)") }
        for (name, value) in [("--max-frame-bytes", c.maxFramePayload), ("--max-concurrent-streams", c.maxConcurrentStreams),
                              ("--max-connections", c.maxConnections), ("--max-output-buffer-bytes", c.maxOutboundBuffer),
                              ("--decode-budget-bytes", c.decodeLimits.memoryBudget)] where value <= 0 {
            throw ValidationError("\(name) must be positive, not \(value)")
        }
        return c
    }
}

/// Flag, else environment variable, else nil (the caller's default).
struct Environment {
    let values = ProcessInfoEnvironment.current

    func resolve<T>(_ flag: T?, _ variable: String, _ flagName: String, parse: (String) -> T?) throws -> T? {
        if let flag { return flag }
        guard let text = values[variable], !text.isEmpty else { return nil }
        guard let value = parse(text) else {
            throw ValidationError("\(variable)='\(text)' is not a valid value for \(flagName)")
        }
        return value
    }

    func millis(_ flag: Int64?, _ variable: String, _ flagName: String) throws -> TimeAmount? {
        guard let value = try resolve(flag, variable, flagName, parse: { Int64($0) }) else { return nil }
        guard value >= 0 else { throw ValidationError("\(flagName) must not be negative") }
        return .milliseconds(value)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process environment without Foundation.
enum ProcessInfoEnvironment {
    static var current: [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            pointer += 1
        }
        return result
    }
}
