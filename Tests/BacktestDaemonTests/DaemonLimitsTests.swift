import ArgumentParser
import BacktestCommandLine
import BacktestDaemon
import BacktestServer
import Logging
import NIOCore
import NIOPosix
import Testing

/// A tester's findings on backtestd's settings: values that were accepted and then broke the
/// server, clamped silently, or failed without naming the flag or variable.
@Suite("backtestd's limits and listen errors", .timeLimit(.minutes(1)))
struct DaemonLimitsTests {
    @Test("a frame limit below what the protocol's own frames need is refused, naming the minimum",
          arguments: ["5", "0", "4095"])
    func frameLimitMinimum(value: String) {
        let error = #expect(throws: BacktestdConfigurationError.self) {
            try BacktestdConfiguration(flags: [.maxFrameBytes: value], environment: [:])
        }
        #expect(error?.message.hasPrefix("--max-frame-bytes: \"\(value)\" is not allowed; use an integer in 4096...4294967295") == true)
        #expect(error?.message.contains("SETTINGS") == true)
    }

    /// The tester's finding: `backtestd --port ''` listened on the default port.
    @Test("an empty flag value is refused, naming the flag; an empty variable counts as unset",
          arguments: [(BacktestdSetting.port, "--port"), (.requestMemoryMb, "--request-memory-mb"), (.host, "--host"), (.dataSource, "--data-source")])
    func emptyFlagValue(setting: BacktestdSetting, flag: String) {
        for value in ["", " "] {
            let error = #expect(throws: BacktestdConfigurationError.self) {
                try BacktestdConfiguration(flags: [setting: value], environment: [:])
            }
            #expect(error?.message == "\(flag): an empty value is not allowed; give a value or leave the flag out")
        }
        #expect(throws: Never.self) { try BacktestdConfiguration(environment: [setting.variable: ""]) }
    }

    /// The memory budgets given in MB: each setting, its field, and its default in MB.
    static let memoryBudgets: [(BacktestdSetting, any KeyPath<ServerConfiguration, Int> & Sendable, Int)] = [
        (.requestMemoryMb, \.requestMemoryBudget, 64), (.inboundMemoryMb, \.inboundMemoryBudget, 32),
        (.outputMemoryMb, \.outputMemoryBudget, 128),
    ]

    @Test("the memory budgets are read in MB within their range", arguments: memoryBudgets)
    func memoryBudget(_ setting: BacktestdSetting, _ field: any KeyPath<ServerConfiguration, Int> & Sendable, _ defaultMB: Int) throws {
        let flag = try #require(setting.flag)
        #expect(try BacktestdConfiguration(flags: [setting: "48"], environment: [:]).server[keyPath: field] == 48 << 20)
        #expect(try BacktestdConfiguration(environment: [setting.variable: "16"]).server[keyPath: field] == 16 << 20)
        #expect(try BacktestdConfiguration(environment: [:]).server[keyPath: field] == defaultMB << 20)
        for value in ["0", "1048577", "abc", "1.5", "-1"] {
            let error = #expect(throws: BacktestdConfigurationError.self) {
                try BacktestdConfiguration(flags: [setting: value], environment: [:])
            }
            #expect(error?.message.hasPrefix("\(flag): \"\(value)\" is not allowed; use an integer in 1...1048576") == true)
        }
    }

    @Test("the running calls per connection are read within their range")
    func runningCalls() throws {
        #expect(try BacktestdConfiguration(flags: [.maxRunningCalls: "3"], environment: [:]).server.maxRunningCalls == 3)
        #expect(try BacktestdConfiguration(environment: ["BACKTESTD_MAX_RUNNING_CALLS": "16"]).server.maxRunningCalls == 16)
        #expect(try BacktestdConfiguration(environment: [:]).server.maxRunningCalls == 8)
        let error = #expect(throws: BacktestdConfigurationError.self) {
            try BacktestdConfiguration(flags: [.maxRunningCalls: "0"], environment: [:])
        }
        #expect(error?.message.hasPrefix("--max-running-calls: \"0\" is not allowed") == true, "\(String(describing: error?.message))")
    }

    @Test("the smallest and largest frame limits are accepted")
    func frameLimitBounds() throws {
        #expect(try BacktestdConfiguration(flags: [.maxFrameBytes: "4096"], environment: [:]).server.maxFramePayload == 4096)
        #expect(try BacktestdConfiguration(environment: ["BACKTESTD_MAX_FRAME_BYTES": "4294967295"]).server.maxFramePayload == 4_294_967_295)
        #expect(throws: BacktestdConfigurationError.self) {
            try BacktestdConfiguration(environment: ["BACKTESTD_MAX_FRAME_BYTES": "4294967296"])
        }
    }

    @Test("a call timeout of 0 ms is refused")
    func callTimeoutZero() throws {
        let error = #expect(throws: BacktestdConfigurationError.self) {
            try BacktestdConfiguration(flags: [.maxCallTimeoutMs: "0"], environment: [:])
        }
        #expect(error?.message == #"--max-call-timeout-ms: "0" is not allowed; use a number of milliseconds in 1...4294967295"#)
        #expect(try BacktestdConfiguration(flags: [.maxCallTimeoutMs: "1"], environment: [:]).server.maxCallTimeout == .milliseconds(1))
    }

    @Test("a time beyond what SETTINGS carries is refused naming the range, not clamped",
          arguments: [BacktestdSetting.keepaliveMs, .idleTimeoutMs, .handshakeTimeoutMs, .frameTimeoutMs, .drainTimeoutMs, .maxCallTimeoutMs,
                      .inboundStallMs])
    func hugeTimes(setting: BacktestdSetting) throws {
        let error = #expect(throws: BacktestdConfigurationError.self) {
            try BacktestdConfiguration(flags: [setting: "4294967296"], environment: [:])
        }
        #expect(error?.message.hasPrefix("\(setting.flag!): \"4294967296\" is not allowed; use a number of milliseconds in ") == true)
        #expect(error?.message.hasSuffix("...4294967295") == true)
        // Far beyond (an overflow of nanoseconds) is refused the same way, not a crash.
        #expect(throws: BacktestdConfigurationError.self) {
            try BacktestdConfiguration(environment: [setting.variable: "9223372036854775807"])
        }
    }

    @Test("an output buffer with no room for control frames is refused")
    func outputBufferMinimum() throws {
        let error = #expect(throws: BacktestdConfigurationError.self) {
            try BacktestdConfiguration(flags: [.maxOutputBufferBytes: "1"], environment: [:])
        }
        #expect(error?.message.hasPrefix(#"--max-output-buffer-bytes: "1" is not allowed; use an integer of at least 65536"#) == true)
        #expect(try BacktestdConfiguration(flags: [.maxOutputBufferBytes: "65536"], environment: [:]).server.maxOutboundBuffer == 65536)
    }

    @Test("keepalive 0 still disables the PINGs")
    func keepaliveOff() throws {
        #expect(try BacktestdConfiguration(flags: [.keepaliveMs: "0"], environment: [:]).server.keepaliveInterval == .zero)
    }

    @Test("the inbound stall time is read in ms, 2 s by default, 0 turning the rule off")
    func inboundStall() throws {
        #expect(try BacktestdConfiguration(environment: [:]).server.inboundStallTimeout == .seconds(2))
        #expect(try BacktestdConfiguration(flags: [.inboundStallMs: "500"], environment: [:]).server.inboundStallTimeout == .milliseconds(500))
        #expect(try BacktestdConfiguration(environment: ["BACKTESTD_INBOUND_STALL_MS": "0"]).server.inboundStallTimeout == .zero)
    }

    @Test("a port in use names the flag, the variable, or the default")
    func portInUse() async throws {
        // Hold a port, then ask backtestd's server for it.
        let holder = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = holder.localAddress!.port!
        defer { holder.close(promise: nil) }
        for (flags, environment, expected) in [
            ([BacktestdSetting.port: "\(port)"], [String: String](), "--port \(port): address already in use"),
            ([:], ["BACKTESTD_PORT": "\(port)"], "BACKTESTD_PORT=\(port): address already in use"),
        ] {
            let configuration = try BacktestdConfiguration(flags: flags, environment: environment)
            let error = try await Self.bindError(configuration)
            #expect(configuration.bindFailure(error).message == expected)
        }
    }

    @Test("a host that is not an address of this machine names --host")
    func badHost() async throws {
        let configuration = try BacktestdConfiguration(flags: [.host: "999.1.1.1", .port: "0"], environment: [:])
        let error = try await Self.bindError(configuration)
        #expect(error.isAboutHost)
        #expect(configuration.bindFailure(error).message.hasPrefix("--host 999.1.1.1: "))
    }

    /// Runs the server the configuration describes and returns why it could not listen.
    static func bindError(_ configuration: BacktestdConfiguration) async throws -> ServerBindError {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let server = BacktestServer(configuration: configuration.server, service: UnimplementedBacktestService(), logger: logger)
        do {
            try await server.run()
        } catch let error as ServerBindError {
            return error
        }
        throw BacktestdConfigurationError("the server listened")
    }

    @Test("BACKTEST_PORT (the CLI's and client's variable) is named when it is not a port")
    func clientPortVariable() throws {
        let options = try ConnectionOptions.parse([])
        do {
            _ = try options.endpoint { $0 == "BACKTEST_PORT" ? "abc" : nil }
            Issue.record("accepted")
        } catch let error as ValidationError {
            #expect(error.message == #"BACKTEST_PORT: "abc" is not a port; use an integer in 1...65535"#)
        }
        let flag = try ConnectionOptions.parse(["--port", "70000"])
        do {
            _ = try flag.endpoint { _ in nil }
            Issue.record("accepted")
        } catch let error as ValidationError {
            #expect(error.message.hasPrefix("--port: \"70000\""))
        }
        let endpoint = try ConnectionOptions.parse([]).endpoint { ["BACKTEST_PORT": "7001", "BACKTEST_HOST": "10.0.0.1"][$0] }
        #expect(endpoint.host == "10.0.0.1" && endpoint.port == 7001)
    }
}
