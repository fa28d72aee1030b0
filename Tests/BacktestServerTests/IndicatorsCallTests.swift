import BacktestCache
import BacktestClient
import BacktestCore
import BacktestEngine
import BacktestModel
import BacktestServer
import BacktestService
import BacktestTestSupport
import Foundation
import Logging
import MarketData
import Testing

/// GetIndicators (issue 15) through a real server on the shared daily files: `backtest
/// indicators --json` reproduces shared/reference/indicators at 1e-9, the call goes through the
/// cache as backtests do, and bad requests name their field.
@Suite("GetIndicators", .timeLimit(.minutes(5)))
struct IndicatorsCallTests {
    /// shared/reference/indicators/TICKER.json.
    struct Reference: Decodable {
        var ticker: String
        var adjustment: String
        var dates: [String]
        var close: [Double]
        var series: [String: [Double?]]
    }

    /// The seven indicator types of the issue, every output the references hold.
    static let keys = [
        "sma:20", "sma:50", "sma:200", "ema:12", "ema:26", "rsi:14", "rsi:2",
        "macd:12,26,9:macd", "macd:12,26,9:signal", "macd:12,26,9:hist",
        "bbands:20,2:upper", "bbands:20,2:middle", "bbands:20,2:lower", "atr:14", "stddev:20",
    ]

    static func quietLogger() -> Logger {
        var logger = Logger(label: "test.indicators")
        logger.logLevel = .critical
        return logger
    }

    static func service(cache: MarketDataCache? = nil) throws -> EngineBacktestService {
        let pipeline = BacktestPipeline(
            source: try LocalFilesProvider(directory: SharedData.dailyDirectory), cache: cache, logger: quietLogger())
        return EngineBacktestService(pipeline: pipeline, serverVersion: "test")
    }

    /// TA-Lib's values are rounded to 10 decimals in the references: 1e-9 relative, or absolute
    /// near zero.
    static func close(_ value: Double?, _ expected: Double?) -> Bool {
        guard let value, let expected else { return value == nil && expected == nil }
        return abs(value - expected) <= 1e-9 * max(1, abs(expected))
    }

    // MARK: The CLI against the references

    @Test("backtest indicators --json equals the shared reference", arguments: ["AAPL", "XOM", "SPY"])
    func cliMatchesReference(ticker: String) async throws {
        let reference = try SharedData.reference("indicators/\(ticker).json", as: Reference.self)
        try await withServer(service: try Self.service()) { _, port in
            let run = try await CLI.run([
                "indicators", "--port", "\(port)", "--ticker", ticker, "--series", Self.keys.joined(separator: ","), "--json",
            ])
            try #require(run.status == 0, "backtest indicators failed: \(run.stderr)")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
            #expect(Set(json.keys).isSuperset(of: ["ticker", "adjustment", "dates", "close", "series"]))
            #expect(json["ticker"] as? String == ticker)
            #expect(json["adjustment"] as? String == "split")
            let dates = try #require(json["dates"] as? [String])
            #expect(dates == reference.dates, "the whole data range when no dates are given")
            let close = try #require(json["close"] as? [Double])
            #expect(close.count == reference.close.count && zip(close, reference.close).allSatisfy { Self.close($0, $1) })
            let series = try #require(json["series"] as? [String: Any])
            #expect(Set(series.keys) == Set(Self.keys))
            for key in Self.keys {
                let values = try #require(series[key] as? [Any], "\(key)").map { $0 as? Double }
                let expected = try #require(reference.series[key], "\(key) in the reference")
                try #require(values.count == expected.count, "\(ticker) \(key): \(values.count) values")
                var mismatches = 0
                for (i, value) in values.enumerated() where !Self.close(value, expected[i]) {
                    if mismatches < 3 { Issue.record("\(ticker) \(key) at \(dates[i]): \(String(describing: value)) vs \(String(describing: expected[i]))") }
                    mismatches += 1
                }
                #expect(mismatches == 0, "\(ticker) \(key)")
                #expect(values.first.map { $0 == nil } == true, "\(key) starts with its warm-up as null")
            }
        }
    }

    @Test func cliWindowCSVAndErrors() async throws {
        let reference = try SharedData.reference("indicators/AAPL.json", as: Reference.self)
        try await withServer(service: try Self.service()) { _, port in
            // A window: its dates, and values equal to the whole history's (no fresh warm-up).
            let window = try await CLI.run([
                "indicators", "--port", "\(port)", "--ticker", "AAPL", "--series", "sma:200", "--series", "macd:12,26,9:signal",
                "--start", "2010-01-04", "--end", "2010-03-31", "--json",
            ])
            try #require(window.status == 0, "\(window.stderr)")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(window.stdout.utf8)) as? [String: Any])
            let dates = try #require(json["dates"] as? [String])
            let first = try #require(reference.dates.firstIndex(of: "2010-01-04"))
            #expect(dates.first == "2010-01-04" && dates.last == "2010-03-31")
            #expect(dates == Array(reference.dates[first..<(first + dates.count)]))
            let series = try #require(json["series"] as? [String: [Double]])
            for key in ["sma:200", "macd:12,26,9:signal"] {
                let values = try #require(series[key], "\(key): every value defined in 2010")
                let expected = reference.series[key]![first..<(first + dates.count)]
                #expect(zip(values, expected).allSatisfy { Self.close($0, $1) }, "\(key)")
            }

            let csv = try await CLI.run([
                "indicators", "--port", "\(port)", "--ticker", "AAPL", "--series", "rsi,macd:12,26,9:hist",
                "--start", "1999-11-01", "--end", "1999-11-30", "--csv",
            ])
            try #require(csv.status == 0, "\(csv.stderr)")
            let lines = csv.stdout.split(separator: "\n")
            #expect(lines.first == "date,close,rsi:14,\"macd:12,26,9:hist\"")
            #expect(lines.dropFirst().first?.hasPrefix("1999-11-01,") == true)
            #expect(lines.dropFirst().first?.hasSuffix(",,") == true, "warm-up cells are empty")

            let table = try await CLI.run(["indicators", "--port", "\(port)", "--ticker", "XOM", "--series", "atr:14", "--rows", "5"])
            try #require(table.status == 0, "\(table.stderr)")
            #expect(table.stdout.contains("atr:14") && table.stdout.contains("the last 5 shown"))

            let badKey = try await CLI.run(["indicators", "--port", "\(port)", "--ticker", "AAPL", "--series", "sma:50,sma:0", "--json"])
            #expect(badKey.status == 1)
            #expect(badKey.stderr.contains("INVALID_ARGUMENT") && badKey.stderr.contains("(field get_indicators.series[1])"), "\(badKey.stderr)")
            let badDate = try await CLI.run(["indicators", "--port", "\(port)", "--ticker", "AAPL", "--series", "sma:5", "--start", "2020-02-30"])
            #expect(badDate.status == 1)
            #expect(badDate.stderr.contains("(field get_indicators.start_date)"), "\(badDate.stderr)")
            let unknown = try await CLI.run(["indicators", "--port", "\(port)", "--ticker", "ZZZZ", "--series", "sma:5"])
            #expect(unknown.status == 1)
            #expect(unknown.stderr.contains("NOT_FOUND") && unknown.stderr.contains("(field get_indicators.ticker)"), "\(unknown.stderr)")
        }
    }

    // MARK: The call through the Swift client

    @Test func badRequestsNameTheField() async throws {
        try await withServer(service: try Self.service()) { _, port in
            let client = BacktestClient(port: port)
            let cases: [(IndicatorsRequest, StatusCode, String)] = [
                (IndicatorsRequest(ticker: "aapl", series: ["sma:5"]), .invalidArgument, "get_indicators.ticker"),
                (IndicatorsRequest(ticker: "", series: ["sma:5"]), .invalidArgument, "get_indicators.ticker"),
                (IndicatorsRequest(ticker: "AAPL", series: []), .invalidArgument, "get_indicators.series"),
                (IndicatorsRequest(ticker: "AAPL", series: ["sma:5", "foo:3"]), .invalidArgument, "get_indicators.series[1]"),
                (IndicatorsRequest(ticker: "AAPL", series: ["macd:26,12,9"]), .invalidArgument, "get_indicators.series[0]"),
                (IndicatorsRequest(ticker: "AAPL", series: ["bbands:20,2:top"]), .invalidArgument, "get_indicators.series[0]"),
                (IndicatorsRequest(ticker: "AAPL", series: ["sma:x"]), .invalidArgument, "get_indicators.series[0]"),
                (IndicatorsRequest(ticker: "AAPL", series: Array(repeating: "sma:5", count: 33)), .invalidArgument, "get_indicators.series"),
                (IndicatorsRequest(ticker: "AAPL", series: ["sma:5"], start: TradingDate(iso: "2020-02-01"), end: TradingDate(iso: "2020-01-01")),
                 .invalidArgument, "get_indicators.end_date"),
                (IndicatorsRequest(ticker: "ZZZZ", series: ["sma:5"]), .notFound, "get_indicators.ticker"),
            ]
            for (request, code, field) in cases {
                do {
                    _ = try await client.indicators(request)
                    Issue.record("\(request) accepted")
                } catch let error as BacktestError {
                    #expect(error.code == code, "\(request): \(error)")
                    #expect(error.field == field, "\(request): \(error)")
                }
            }
            // Duplicates by canonical key are answered once, in the order first asked.
            let answer = try await client.indicators(IndicatorsRequest(
                ticker: "SPY", series: ["rsi", "sma:5", "rsi:14", "SMA:5.0"], start: TradingDate(iso: "2019-01-02"),
                end: TradingDate(iso: "2019-01-31"), adjustment: .raw))
            #expect(answer.series.map(\.key) == ["rsi:14", "sma:5"])
            #expect(answer.adjustment == .raw && answer.dataSource == "files" && answer.dates.count == 21)
            #expect(answer.series.allSatisfy { $0.values.count == 21 && !$0.values.contains { $0.isNaN } })
            // A window after the data's last bar is empty, not an error.
            let after = try await client.indicators(IndicatorsRequest(
                ticker: "SPY", series: ["sma:5"], start: TradingDate(iso: "2030-01-02"), end: TradingDate(iso: "2030-12-31")))
            #expect(after.dates.isEmpty && after.series.first?.values.isEmpty == true)
            // ... and so is one before its first bar (SPY's file starts 1999-11-01).
            let before = try await client.indicators(IndicatorsRequest(
                ticker: "SPY", series: ["sma:5"], start: TradingDate(iso: "1993-01-29"), end: TradingDate(iso: "1993-12-31")))
            #expect(before.dates.isEmpty && before.series.map(\.key) == ["sma:5"])
            let onlyEnd = try await client.indicators(IndicatorsRequest(ticker: "SPY", series: ["sma:5"], end: TradingDate(iso: "1995-01-03")))
            #expect(onlyEnd.dates.isEmpty)
            await client.close()
        }
    }

    @Test func answerOverTheValueLimitIsResourceExhausted() async throws {
        let pipeline = try Self.service().pipeline
        let request = IndicatorsRequest(
            ticker: "AAPL", series: ["sma:5", "ema:5"], start: TradingDate(iso: "2020-01-02"), end: TradingDate(iso: "2020-01-31"))
        // 21 trading days x 3 arrays (close and two series).
        #expect(try await pipeline.indicators(request, maximumValues: 63).dates.count == 21)
        do {
            _ = try await pipeline.indicators(request, maximumValues: 62)
            Issue.record("an answer over the limit was sent")
        } catch {
            #expect(error.code == .resourceExhausted && error.field == "get_indicators.series", "\(error)")
        }
    }

    @Test func servedFromTheBacktestsCacheAndCalculator() async throws {
        try await withRedisServer { redis in
            let cache = MarketDataCache(
                redis: RedisConfiguration(port: redis.port),
                options: CacheOptions(keyPrefix: RedisServerProcess.uniquePrefix("indicators"), localCacheBytes: 0),
                logger: Self.quietLogger())
            let service = try Self.service(cache: cache)
            do {
                let request = IndicatorsRequest(ticker: "XOM", series: ["ema:26", "atr:14"], end: TradingDate(iso: "2019-12-31"))
                let context = CallContext(streamID: 1, logger: Self.quietLogger())
                let cold = try await service.indicators(request, context: context)
                let afterCold = cache.figures()
                let warm = try await service.indicators(request, context: context)
                let afterWarm = cache.figures()
                #expect(afterCold.misses > 0)
                #expect(afterWarm.misses == afterCold.misses, "the second call is answered from Redis")
                #expect(afterWarm.hits > afterCold.hits)
                #expect(warm.dates == cold.dates && warm.close == cold.close)
                for (a, b) in zip(warm.series, cold.series) {
                    #expect(a.key == b.key && a.values.elementsEqual(b.values) { $0 == $1 || ($0.isNaN && $1.isNaN) })
                }
                // The calculator's values on the same bars.
                let bars = try #require(try await LocalFilesProvider(directory: SharedData.dailyDirectory).dailyBars(
                    BarQuery(symbols: ["XOM"], range: cold.dates[0]...cold.dates[cold.dates.count - 1], adjustment: .split)).bars["XOM"])
                #expect(bars.dates == cold.dates)
                let ema = try IndicatorCalculator.compute(try IndicatorSpec(parsing: "ema:26"), bars: bars)
                #expect(ema.elementsEqual(cold.series[0].values) { $0 == $1 || ($0.isNaN && $1.isNaN) })
                await cache.shutdown()
            } catch {
                await cache.shutdown()
                throw error
            }
        }
    }
}

/// Runs the `backtest` executable built beside the test bundle.
enum CLI {
    struct Run: Sendable {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static var executable: URL {
        let here = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: here).deletingLastPathComponent().appendingPathComponent("backtest")
    }

    static func run(_ arguments: [String], fileID: String = #fileID, function: String = #function) async throws -> Run {
        try #require(FileManager.default.isExecutableFile(atPath: executable.path), "no \(executable.path): swift build --build-tests builds it")
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["NO_COLOR"] = "1"
        process.environment = environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let child = try ChildProcess.launch(process, owner: testOwner(fileID: fileID, function: function))
        // Both pipes drain on threads of their own while the command runs.
        return await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                let errors = LockedText()
                let reader = Thread { errors.set(String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)) }
                reader.start()
                let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                child.waitUntilExit()
                while !errors.isSet { usleep(1000) }
                continuation.resume(returning: Run(status: child.process.terminationStatus, stdout: output, stderr: errors.value))
            }
        }
    }

    final class LockedText: @unchecked Sendable {
        private let lock = NSLock()
        private var text: String?
        func set(_ value: String) { lock.withLock { text = value } }
        var isSet: Bool { lock.withLock { text != nil } }
        var value: String { lock.withLock { text ?? "" } }
    }
}
