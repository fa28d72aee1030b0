import ArgumentParser
import BacktestDaemon
import BacktestServer
import BacktestService
import BacktestWeb
import Foundation
import Logging
import ServiceLifecycle

/// backtestd: serves the backtest protocol (PROTOCOL.md) on TCP, 127.0.0.1:50051 by default.
///
/// Every option can also come from an environment variable (the flag wins): BACKTESTD_HOST,
/// BACKTESTD_PORT, BACKTESTD_MAX_FRAME_BYTES, ... (the flag name upper-cased with underscores).
/// The flags are declared here for the help text; their values, like every variable, are parsed
/// by `BacktestdConfiguration` (BacktestDaemon), the one configuration reader.
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
    var port: String?
    @Option(help: "Largest frame payload in bytes, 4096...4294967295 (env BACKTESTD_MAX_FRAME_BYTES). Default 4194304.")
    var maxFrameBytes: String?
    @Option(help: "Calls in flight per connection (env BACKTESTD_MAX_CONCURRENT_STREAMS). Default 256.")
    var maxConcurrentStreams: String?
    @Option(help: "Calls of one connection whose work runs at once, counted until their answer is handed to the socket; more wait their turn with their deadline running (env BACKTESTD_MAX_RUNNING_CALLS). Default 8.")
    var maxRunningCalls: String?
    @Option(help: "Open connections (env BACKTESTD_MAX_CONNECTIONS). Default 1024.")
    var maxConnections: String?
    @Option(help: "Time to send the preface, ms (env BACKTESTD_HANDSHAKE_TIMEOUT_MS). Default 5000.")
    var handshakeTimeoutMs: String?
    @Option(help: "Close connections idle this long, ms (env BACKTESTD_IDLE_TIMEOUT_MS). Default 300000.")
    var idleTimeoutMs: String?
    @Option(help: "Time for a started frame to arrive whole, ms (env BACKTESTD_FRAME_TIMEOUT_MS). Default 10000.")
    var frameTimeoutMs: String?
    @Option(help: "PING interval while calls run, ms, 0...4294967295; 0 disables (env BACKTESTD_KEEPALIVE_MS). Default 30000.")
    var keepaliveMs: String?
    @Option(help: "Upper bound of a call's deadline, ms, 1...4294967295 (env BACKTESTD_MAX_CALL_TIMEOUT_MS). Default 600000.")
    var maxCallTimeoutMs: String?
    @Option(help: "Output bytes a connection holds for its peer, all streams together; streams wait beyond it (env BACKTESTD_MAX_OUTPUT_BUFFER_BYTES). Default 8388608.")
    var maxOutputBufferBytes: String?
    @Option(help: "Memory one request may take once decoded, bytes (env BACKTESTD_DECODE_BUDGET_BYTES). Default 67108864.")
    var decodeBudgetBytes: String?
    @Option(help: "Memory that large requests (over 256 KiB) may hold at once while they are decoded and run, MB, 1...1048576; more wait their turn (env BACKTESTD_REQUEST_MEMORY_MB). Default 64.")
    var requestMemoryMb: String?
    @Option(help: "Bytes of incoming frames (over 16 KiB) held at once, being received or not yet decoded, MB, 1...1048576; a connection whose next frame does not fit is not read until it does (env BACKTESTD_INBOUND_MEMORY_MB). Default 32.")
    var inboundMemoryMb: String?
    @Option(help: "While other connections wait for inbound room, a connection holding room for a frame it is receiving is closed when none of its bytes arrive for this long, ms, 0...4294967295; 0 disables (env BACKTESTD_INBOUND_STALL_MS). Default 2000.")
    var inboundStallMs: String?
    @Option(help: "Bytes of output held for clients at once, answers waiting to be written or taken by the sockets, MB, 1...1048576; beyond it the connection holding the most is closed (env BACKTESTD_OUTPUT_MEMORY_MB). Default 128.")
    var outputMemoryMb: String?
    @Option(help: "Time in-flight calls get on shutdown, ms (env BACKTESTD_DRAIN_TIMEOUT_MS). Default 30000.")
    var drainTimeoutMs: String?
    @Option(help: "trace, debug, info, notice, warning, error or critical (env BACKTESTD_LOG_LEVEL). Default info.")
    var logLevel: String?
    @Option(help: "Market data: demo, demo:SEED, alpaca, or files:DIRECTORY (env BACKTESTD_DATA_SOURCE). Default demo. The APCA_API_* and BACKTESTD_ALPACA_* variables are read, and checked, only with alpaca.")
    var dataSource: String?
    @Option(help: "Variants of a batch simulated at once (env BACKTESTD_MAX_PARALLEL). Default 4.")
    var maxParallel: String?
    @Option(help: "How long finished batches stay available to GetBatchStatus, s (env BACKTESTD_BATCH_RETENTION_SECONDS). Default 600.")
    var batchRetentionSeconds: String?

    @Option(help: "Megabytes of FULL results finished batches may keep; beyond it a finishing batch keeps summaries, and summaries go only when their retention ends or running batches need their room (env BACKTESTD_BATCH_RETENTION_MB, default 128).")
    var batchRetentionMb: String?

    @Option(help: "Megabytes of results running and finished batches may hold together; a batch that does not fit waits for room up to its deadline, one larger than the budget is refused with RESOURCE_EXHAUSTED (env BACKTESTD_BATCH_BUDGET_MB, default 192).")
    var batchBudgetMb: String?
    @Option(help: "Batches that may wait for room in the batch memory budget at once; one more is refused with RESOURCE_EXHAUSTED (env BACKTESTD_BATCH_QUEUE, default 64).")
    var batchQueue: String?

    /// The flags given, by setting; `BacktestdConfiguration` parses them (and the environment).
    var flags: [BacktestdSetting: String] {
        let given: [(BacktestdSetting, String?)] = [
            (.host, host), (.port, port), (.maxFrameBytes, maxFrameBytes), (.maxConcurrentStreams, maxConcurrentStreams), (.maxRunningCalls, maxRunningCalls),
            (.maxConnections, maxConnections), (.handshakeTimeoutMs, handshakeTimeoutMs), (.idleTimeoutMs, idleTimeoutMs),
            (.frameTimeoutMs, frameTimeoutMs), (.keepaliveMs, keepaliveMs), (.maxCallTimeoutMs, maxCallTimeoutMs),
            (.maxOutputBufferBytes, maxOutputBufferBytes), (.decodeBudgetBytes, decodeBudgetBytes), (.requestMemoryMb, requestMemoryMb), (.inboundMemoryMb, inboundMemoryMb), (.inboundStallMs, inboundStallMs), (.outputMemoryMb, outputMemoryMb),
            (.drainTimeoutMs, drainTimeoutMs), (.logLevel, logLevel), (.dataSource, dataSource), (.maxParallel, maxParallel),
            (.batchRetentionSeconds, batchRetentionSeconds), (.batchRetentionMb, batchRetentionMb),
            (.batchBudgetMb, batchBudgetMb), (.batchQueue, batchQueue), (.metricsPort, metricsPort), (.httpPort, httpPort),
            (.variantDelayMs, variantDelayMs),
        ]
        return Dictionary(uniqueKeysWithValues: given.compactMap { setting, value in value.map { (setting, $0) } })
    }

    @Option(help: "Serve Prometheus metrics on http://127.0.0.1:PORT/metrics (env BACKTESTD_METRICS_PORT). Default off.")
    var metricsPort: String?

    @Option(help: "Serve the web dashboard on http://HOST:PORT/ (HOST as --host, loopback by default) (env BACKTESTD_HTTP_PORT). Default off.")
    var httpPort: String?

    @Option(help: "Pause before each batch variant result, ms: for demos and browser tests that watch a batch go from Partial to Final (env BACKTESTD_VARIANT_DELAY_MS). Default 0.")
    var variantDelayMs: String?

    func run() async throws {
        let configuration: BacktestdConfiguration
        do {
            configuration = try BacktestdConfiguration(flags: flags, environment: ProcessInfo.processInfo.environment)
        } catch {
            throw ValidationError(error.message)
        }
        let level = configuration.logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "backtestd")
        // A fixed mmap threshold keeps heavy calls' large blocks out of the heap (MemoryReturn);
        // an operator's own MALLOC_MMAP_THRESHOLD_ wins.
        if ProcessInfo.processInfo.environment["MALLOC_MMAP_THRESHOLD_"] == nil { MemoryReturn.configureAllocator() }
        let domain = try DomainSetup.make(configuration, logger: logger)
        var service: any BacktestService = domain.service
        var services = domain.services
        if let port = configuration.metricsPort {
            let metrics = ServerMetrics(cache: domain.service.pipeline.cache)
            service = MeteredBacktestService(domain.service, metrics: metrics)
            services.append(MetricsHTTPService(metrics: metrics, port: port, logger: logger))
        }
        let server = BacktestServer(configuration: configuration.server, service: service, logger: logger)
        var lifecycle: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: server)] + services.map { .init(service: $0) }
        if let port = configuration.httpPort {
            // The dashboard calls the same service (metered too when --metrics-port is set).
            let host = configuration.server.host
            let web = WebDashboard(
                service: service, configuration: WebConfiguration(host: host, port: port), logger: Logger(label: "backtestd.web"))
            lifecycle.append(.init(service: web.application(onRunning: { bound in
                logger.info("web dashboard on http://\(host.contains(":") ? "[\(host)]" : host):\(bound)/")
            })))
        }
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: lifecycle,
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch let error as ServerBindError {
            // Name the flag or variable that chose the address, not just NIO's errno.
            throw ValidationError(configuration.bindFailure(error).message)
        }
    }
}
