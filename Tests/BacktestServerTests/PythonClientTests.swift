import BacktestClient
import BacktestCore
import BacktestEngine
import BacktestProtocol
import BacktestServer
import BacktestService
import BacktestModel
import BacktestTestSupport
import Foundation
import Logging
import MarketData
import NIOCore
import Testing

/// The Python client in examples/python (protoc-generated messages, framing written from
/// PROTOCOL.md) round-trips real calls against an in-process server running the real service, as
/// backtestd runs it by default: the engine on the demo data, here with the cache off. Its decoded
/// RunBacktest and RunBatch results must equal, exactly, what the Swift client gets for the same
/// requests. Needs python3, protoc and the protobuf 4.21 runtime (examples/python/requirements.txt);
/// BACKTEST_SKIP_PYTHON=1 skips it.
@Suite("Python client", .timeLimit(.minutes(2)),
       .enabled(if: ProcessInfo.processInfo.environment["BACKTEST_SKIP_PYTHON"] != "1"))
struct PythonClientTests {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func pythonClientRoundTrips() async throws {
        let report = FileManager.default.temporaryDirectory.appendingPathComponent("python-roundtrip-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: report) }
        try await withServer(service: try Self.demoService()) { _, port in
            let (status, text) = try await Self.runPython(port: port, report: report)
            #expect(status == 0, "python round trip failed:\n\(text)")
            #expect(text.contains("python round trip: OK"))
            #expect(text.contains("field run_backtest.settings.start_date"))
            guard status == 0 else { return }
            let decoded = try JSONDecoder().decode(PythonReport.self, from: Data(contentsOf: report))

            // The very requests Python sent, decoded by our codec and asked through the Swift client.
            let client = BacktestClient(port: port)
            guard case .runBacktest(let single) = try Self.method(of: decoded.runBacktest.request) else {
                Issue.record("Python's first request is not a RunBacktest")
                return
            }
            let swift = try await client.runBacktest(single.strategy, settings: single.settings)
            #expect(swift.dataSource == "demo")
            decoded.runBacktest.result.expectEqual(to: swift, "RunBacktest")

            guard case .runBatch(let batch) = try Self.method(of: decoded.runBatch.request) else {
                Issue.record("Python's second request is not a RunBatch")
                return
            }
            #expect(batch.variants.count == 3)
            #expect(decoded.runBatch.updates.last?.state == "BATCH_FINAL")
            #expect(decoded.runBatch.updates.flatMap(\.indices).sorted() == [0, 1, 2], "each variant exactly once")
            let outcome = try await BatchOutcome.collect(client.runBatch(batch.variants, settings: batch.settings))
            #expect(outcome.final?.completed == 3)
            let swiftResults = outcome.results
            for index in 0..<batch.variants.count {
                guard let python = decoded.runBatch.results[String(index)], let swift = swiftResults[index] else {
                    Issue.record("variant \(index): missing from Python's or Swift's batch")
                    continue
                }
                python.expectEqual(to: swift, "RunBatch variant \(index)")
            }

            // GetIndicators: the same values, bit for bit (NaN for the warm-up).
            let indicators = try #require(decoded.indicators, "the report has GetIndicators")
            guard case .indicators(let asked) = try Self.method(of: indicators.request) else {
                Issue.record("Python's GetIndicators request decodes to another method")
                return
            }
            let values = try await client.indicators(asked)
            #expect(indicators.result.dates == values.dates.map(\.yyyymmdd))
            #expect(indicators.result.close.count == values.close.count
                    && zip(indicators.result.close, values.close).allSatisfy { PythonResult.same($0, $1) })
            #expect(Set(indicators.result.series.keys) == Set(values.series.map(\.key)))
            for series in values.series {
                let python = indicators.result.series[series.key] ?? []
                #expect(python.count == series.values.count && zip(python, series.values).allSatisfy { PythonResult.same($0, $1) },
                        "GetIndicators \(series.key)")
            }
            await client.close()
        }
    }

    /// What backtestd wires by default (Sources/backtestd/DomainSetup.swift), without Redis.
    static func demoService() throws -> EngineBacktestService {
        var logger = Logger(label: "test.python-client")
        logger.logLevel = .critical
        let source = try MarketDataSource.parse("demo").makeProvider(logger: logger)
        let pipeline = BacktestPipeline(source: source, cache: nil, engines: EngineSelection(), logger: logger)
        return EngineBacktestService(pipeline: pipeline, jobs: BatchJobRegistry(), maxParallel: 2,
                                     serverVersion: "python-client-test")
    }

    /// Runs examples/python/roundtrip_test.py; its exit status and its output (stdout and stderr).
    static func runPython(port: Int, report: URL) async throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", packageRoot.appendingPathComponent("examples/python/roundtrip_test.py").path,
                             "--port", "\(port)", "--report", report.path]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        let child = try ChildProcess.launch(process, owner: "PythonClientTests.swift pythonClientRoundTrips()")
        // Read on a thread of its own: the pipe must drain while the script runs.
        let text = await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                let data = output.fileHandleForReading.readDataToEndOfFile()
                child.waitUntilExit()
                continuation.resume(returning: String(decoding: data, as: UTF8.self))
            }
        }
        return (child.process.terminationStatus, text)
    }

    /// The method of a serialized CallRequest (hex), as the server would decode it.
    static func method(of hex: String) throws -> CallMethod {
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            bytes.append(try #require(UInt8(hex[index..<next], radix: 16)))
            index = next
        }
        return try CallRequest.decode(ByteBuffer(bytes: bytes), limits: .default).method.get()
    }
}

/// What roundtrip_test.py writes with --report: its decoded results, floats as Python reprs.
struct PythonReport: Decodable {
    struct Single: Decodable {
        var request: String
        var result: PythonResult
    }
    struct Batch: Decodable {
        struct Update: Decodable {
            var state: String
            var completed: Int
            var indices: [Int]
        }
        var request: String
        var updates: [Update]
        var results: [String: PythonResult]
    }
    struct Indicators: Decodable {
        struct Values: Decodable {
            var dates: [Int32]
            var close: [String]
            var series: [String: [String]]
        }
        var request: String
        var result: Values
    }
    var runBacktest: Single
    var runBatch: Batch
    var indicators: Indicators?

    enum CodingKeys: String, CodingKey {
        case runBacktest = "run_backtest"
        case runBatch = "run_batch"
        case indicators
    }
}

struct PythonResult: Decodable {
    struct Order: Decodable {
        var date: Int32
        var ticker: String
        var side: String
        var quantity: String
        var price: String
        var commission: String
    }
    var strategyName: String
    var finalEquity: String
    var curvePoints: Int
    var firstDate: Int32
    var lastDate: Int32
    var metrics: [String: String]
    var orders: [Order]
    var dataSource: String

    enum CodingKeys: String, CodingKey {
        case strategyName = "strategy_name", finalEquity = "final_equity", curvePoints = "curve_points"
        case firstDate = "first_date", lastDate = "last_date", metrics, orders, dataSource = "data_source"
    }

    /// Exact equality with the Swift client's result: the same doubles, bit for bit (a NaN
    /// equals a NaN).
    func expectEqual(to swift: BacktestResult, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(strategyName == swift.strategyName, "\(what): strategy name", sourceLocation: sourceLocation)
        #expect(Self.same(finalEquity, swift.finalEquity), "\(what): final equity \(finalEquity) vs \(swift.finalEquity)",
                sourceLocation: sourceLocation)
        #expect(curvePoints == swift.equity.count, "\(what): curve points", sourceLocation: sourceLocation)
        #expect(firstDate == swift.dates.first?.yyyymmdd && lastDate == swift.dates.last?.yyyymmdd, "\(what): dates",
                sourceLocation: sourceLocation)
        #expect(dataSource == swift.dataSource, "\(what): data source", sourceLocation: sourceLocation)

        let swiftMetrics = Self.metrics(swift.metrics)
        #expect(Set(metrics.keys) == Set(swiftMetrics.keys), "\(what): the Metrics fields of proto/backtest.proto",
                sourceLocation: sourceLocation)
        for (name, value) in swiftMetrics.sorted(by: { $0.key < $1.key }) {
            #expect(metrics[name].map { Self.same($0, value) } == true, "\(what): metrics.\(name) \(metrics[name] ?? "-") vs \(value)",
                    sourceLocation: sourceLocation)
        }

        #expect(orders.count == swift.orders.count, "\(what): orders", sourceLocation: sourceLocation)
        for (index, (python, swift)) in zip(orders, swift.orders).enumerated() {
            let same = python.date == swift.date.yyyymmdd && python.ticker == swift.ticker
                && python.side == swift.side.rawValue.uppercased() && Self.same(python.quantity, swift.quantity)
                && Self.same(python.price, swift.price) && Self.same(python.commission, swift.commission)
            #expect(same, "\(what): orders[\(index)] \(python) vs \(swift)", sourceLocation: sourceLocation)
        }
    }

    /// Every field of proto Metrics by its proto name.
    static func metrics(_ m: Metrics) -> [String: Double] {
        [
            "total_return": m.totalReturn, "cagr": m.cagr, "volatility": m.volatility, "sharpe": m.sharpe,
            "sortino": m.sortino, "max_drawdown": m.maxDrawdown, "max_drawdown_duration": Double(m.maxDrawdownDuration),
            "calmar": m.calmar, "alpha": m.alpha, "beta": m.beta, "win_rate": m.winRate, "profit_factor": m.profitFactor,
            "trade_count": Double(m.tradeCount), "exposure": m.exposure,
        ]
    }

    /// A Python repr (shortest round-trip digits, or nan/inf) read back to the same double.
    static func same(_ repr: String, _ value: Double) -> Bool {
        guard let parsed = Double(repr) else { return false }
        return parsed == value || (parsed.isNaN && value.isNaN)
    }
}
