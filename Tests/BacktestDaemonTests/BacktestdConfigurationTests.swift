import BacktestCache
import BacktestCore
import BacktestDaemon
import BacktestServer
import Logging
import MarketData
import NIOCore
import Testing

@Suite("backtestd's configuration reader")
struct BacktestdConfigurationTests {
    @Test("BACKTESTD_CACHE=false|0|no|off (any case) disables the cache", arguments: ["false", "0", "no", "off", "OFF", "False", " no "])
    func cacheOff(value: String) throws {
        let configuration = try BacktestdConfiguration(environment: ["BACKTESTD_CACHE": value])
        #expect(configuration.cache == nil)
        let domain = try DomainSetup.make(configuration, logger: Logger(label: "test"))
        #expect(domain.cache == nil, "no MarketDataCache behind the service")
        #expect(domain.services.isEmpty, "no purge schedule without a cache")
    }

    @Test("the cache is on by default and with true|1|yes|on", arguments: [nil, "", "true", "1", "yes", "on", "ON"])
    func cacheOn(value: String?) throws {
        let environment = value.map { ["BACKTESTD_CACHE": $0] } ?? [:]
        let configuration = try BacktestdConfiguration(environment: environment)
        #expect(configuration.cache == BacktestdConfiguration.Cache(redis: RedisConfiguration(), options: CacheOptions()))
    }

    @Test("a value that is no switch is an error naming the variable and the allowed values")
    func cacheMalformed() {
        let error = #expect(throws: BacktestdConfigurationError.self) {
            try BacktestdConfiguration(environment: ["BACKTESTD_CACHE": "disabled"])
        }
        #expect(error?.message == #"BACKTESTD_CACHE: "disabled" is not allowed; use true, 1, yes, on or false, 0, no, off"#)
    }

    @Test("flags win over the environment, the environment over defaults")
    func precedence() throws {
        let defaults = try BacktestdConfiguration(environment: [:])
        #expect(defaults.server.port == 50051 && defaults.server.host == "127.0.0.1")
        #expect(defaults.maxParallel == 4 && defaults.batchRetentionSeconds == 600 && defaults.batchRetentionMegabytes == 128)
        #expect(defaults.logLevel == .info && defaults.useNewEngine)
        guard case .demo = defaults.dataSource else { Issue.record("default source is not demo"); return }

        let environment = ["BACKTESTD_PORT": "9000", "BACKTESTD_MAX_PARALLEL": "2", "BACKTESTD_IDLE_TIMEOUT_MS": "1500"]
        let fromEnvironment = try BacktestdConfiguration(environment: environment)
        #expect(fromEnvironment.server.port == 9000 && fromEnvironment.maxParallel == 2)
        #expect(fromEnvironment.server.idleTimeout == .milliseconds(1500))

        let fromFlags = try BacktestdConfiguration(flags: [.port: "9001"], environment: environment)
        #expect(fromFlags.server.port == 9001 && fromFlags.maxParallel == 2)
    }

    @Test("a bad flag names the flag, a bad variable the variable")
    func errorsNameTheSource() {
        let flag = #expect(throws: BacktestdConfigurationError.self) {
            try BacktestdConfiguration(flags: [.port: "http"], environment: ["BACKTESTD_PORT": "9000"])
        }
        #expect(flag?.message == #"--port: "http" is not allowed; use an integer in 0...65535"#)
        let variable = #expect(throws: BacktestdConfigurationError.self) {
            try BacktestdConfiguration(environment: ["BACKTESTD_MAX_PARALLEL": "0"])
        }
        #expect(variable?.message == #"BACKTESTD_MAX_PARALLEL: "0" is not allowed; use an integer of at least 1"#)
        let level = #expect(throws: BacktestdConfigurationError.self) {
            try BacktestdConfiguration(flags: [.logLevel: "loud"], environment: [:])
        }
        #expect(level?.message.hasPrefix("--log-level:") == true)
        let long = #expect(throws: BacktestdConfigurationError.self) {
            try BacktestdConfiguration(environment: ["BACKTESTD_KEEPALIVE_MS": String(repeating: "9", count: 200) + "\u{0}"])
        }
        #expect((long?.message.count ?? 0) < 140, "the value is cut short in the message")
    }

    @Test("the web dashboard is off by default; --http-port and --variant-delay-ms reach the configuration")
    func webDashboardSettings() throws {
        let defaults = try BacktestdConfiguration(environment: [:])
        #expect(defaults.httpPort == nil)
        #expect(defaults.variantDelayMilliseconds == 0)
        let set = try BacktestdConfiguration(flags: [.httpPort: "8080"], environment: ["BACKTESTD_VARIANT_DELAY_MS": "250", "BACKTESTD_CACHE": "off"])
        #expect(set.httpPort == 8080)
        #expect(set.variantDelayMilliseconds == 250)
        #expect(BacktestdSetting.httpPort.flag == "--http-port")
        #expect(BacktestdSetting.variantDelayMs.flag == "--variant-delay-ms")
        let error = #expect(throws: BacktestdConfigurationError.self) {
            try BacktestdConfiguration(flags: [.variantDelayMs: "-1"], environment: [:])
        }
        #expect(error?.message == #"--variant-delay-ms: "-1" is not allowed; use an integer in 0...60000"#)
        let domain = try DomainSetup.make(set, logger: Logger(label: "test"))
        #expect(domain.service.variantDelay == .milliseconds(250))
    }

    @Test("every variable's setting is reachable through its own name")
    func settingNames() {
        #expect(BacktestdSetting.maxOutputBufferBytes.flag == "--max-output-buffer-bytes")
        #expect(BacktestdSetting.batchRetentionMb.flag == "--batch-retention-mb")
        #expect(BacktestdSetting.cache.flag == nil)
        #expect(Set(BacktestdSetting.allCases.map(\.variable)).count == BacktestdSetting.allCases.count)
    }

    @Test("Redis and cache variables reach the cache settings")
    func redisVariables() throws {
        let variables = try BacktestdConfiguration(environment: [
            "BACKTESTD_REDIS_HOST": "10.0.0.5", "BACKTESTD_REDIS_PORT": "7000", "BACKTESTD_REDIS_POOL_SIZE": "8",
            "BACKTESTD_REDIS_COMMAND_TIMEOUT_MS": "250", "BACKTESTD_CACHE_PREFIX": "bt2", "BACKTESTD_CACHE_LOCAL_MB": "0",
        ]).cache
        #expect(variables?.redis.host == "10.0.0.5" && variables?.redis.port == 7000 && variables?.redis.poolSize == 8)
        #expect(variables?.redis.commandTimeout == .milliseconds(250))
        #expect(variables?.options.keyPrefix == "bt2" && variables?.options.localCacheBytes == 0)

        let url = try BacktestdConfiguration(environment: [
            "REDIS_URL": "redis://:secret@cache.local:6380/2", "BACKTESTD_REDIS_PORT": "7000",
        ]).cache
        #expect(url?.redis.host == "cache.local" && url?.redis.port == 6380 && url?.redis.password == "secret")

        #expect(throws: BacktestdConfigurationError.self) { try BacktestdConfiguration(environment: ["BACKTESTD_REDIS_PORT": "70000"]) }
        #expect(throws: BacktestdConfigurationError.self) { try BacktestdConfiguration(environment: ["BACKTESTD_CACHE_TTL_SECONDS": "soon"]) }
        let secret = #expect(throws: BacktestdConfigurationError.self) {
            try BacktestdConfiguration(environment: ["REDIS_URL": "redis://:hunter2@host:x"])
        }
        #expect(secret?.message.contains("hunter2") == false)
        // With the cache off its variables are not read.
        #expect(try BacktestdConfiguration(environment: ["BACKTESTD_CACHE": "off", "BACKTESTD_REDIS_PORT": "x"]).cache == nil)
    }

    @Test("Alpaca settings come from the SDKs' variables when the source is alpaca")
    func alpacaVariables() throws {
        let configuration = try BacktestdConfiguration(environment: [
            "BACKTESTD_DATA_SOURCE": "alpaca", "APCA_API_KEY_ID": "id", "APCA_API_SECRET_KEY": "secret",
            "APCA_API_DATA_URL": "http://127.0.0.1:9999", "APCA_API_FEED": "IEX",
            "BACKTESTD_ALPACA_SYMBOLS_PER_REQUEST": "1", "BACKTESTD_ALPACA_REQUESTS_PER_MINUTE": "0",
        ])
        guard case .alpaca(let alpaca) = configuration.dataSource else { Issue.record("not alpaca"); return }
        #expect(alpaca.hasCredentials && alpaca.keyID == "id")
        #expect(alpaca.baseURL == "http://127.0.0.1:9999" && alpaca.feed == "iex")
        #expect(alpaca.maxSymbolsPerRequest == 1 && alpaca.requestsPerMinute == 0)

        let defaults = try BacktestdConfiguration(flags: [.dataSource: "alpaca"], environment: ["APCA_API_KEY_ID": " "])
        guard case .alpaca(let plain) = defaults.dataSource else { Issue.record("not alpaca"); return }
        #expect(!plain.hasCredentials && plain.baseURL == "https://data.alpaca.markets" && plain.feed == "sip")
        #expect(plain.maxSymbolsPerRequest == 100 && plain.requestsPerMinute == 200)

        for bad in ["0", "x"] {
            #expect(throws: BacktestdConfigurationError.self) {
                try BacktestdConfiguration(environment: ["BACKTESTD_DATA_SOURCE": "alpaca", "BACKTESTD_ALPACA_SYMBOLS_PER_REQUEST": bad])
            }
        }
        // Other sources do not read them.
        #expect(throws: Never.self) { try BacktestdConfiguration(environment: ["BACKTESTD_ALPACA_SYMBOLS_PER_REQUEST": "x"]) }
    }

    @Test("the data source and the engine switch")
    func sourceAndEngine() throws {
        guard case .demo(let seed) = try BacktestdConfiguration(environment: ["BACKTESTD_DATA_SOURCE": "demo:42"]).dataSource else {
            Issue.record("not demo")
            return
        }
        #expect(seed == 42)
        let bad = #expect(throws: BacktestdConfigurationError.self) {
            try BacktestdConfiguration(flags: [.dataSource: "yahoo"], environment: [:])
        }
        #expect(bad?.message.hasPrefix(#"--data-source: "yahoo" is not allowed; use demo"#) == true)
        for off in ["false", "FALSE", "0", "no", " off "] {
            #expect(try !BacktestdConfiguration(environment: ["USE_NEW_ENGINE": off]).useNewEngine, "\(off)")
        }
        #expect(try BacktestdConfiguration(environment: ["USE_NEW_ENGINE": "true"]).useNewEngine)
        #expect(throws: BacktestdConfigurationError.self) { try BacktestdConfiguration(environment: ["USE_NEW_ENGINE": "garbage"]) }
    }
}
