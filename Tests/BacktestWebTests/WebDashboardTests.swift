import BacktestCore
import BacktestEngine
import BacktestModel
import BacktestProtocol
import BacktestService
import BacktestWeb
import Foundation
import Hummingbird
import Logging
import MarketData
import ServiceLifecycle
import Synchronization
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The web API on a real loopback server over the engine-backed service on demo data: JSON errors
/// with the service's field path, the body bound, the page's headers and escaping, a batch's
/// event stream, status, FULL variant and CSV. The browser side is Tests/browser.
@Suite struct WebDashboardTests {
    static let strategy = """
        {"name": "<img src=x onerror=alert(1)>", "start": "2019-01-02", "end": "2020-12-31",
         "positions": [{"ticker": "AAPL", "weight": 1, "entry": {"lhs": "sma:10", "op": ">", "rhs": "sma:50"}}]}
        """

    @Test func pageIsServedWithAStrictContentSecurityPolicyAndNoInlineScript() async throws {
        try await withDashboard { base in
            let (status, headers, body) = try await Self.request(base + "/")
            #expect(status == 200)
            #expect(headers["Content-Type"]?.hasPrefix("text/html") == true)
            let policy = try #require(headers["Content-Security-Policy"])
            #expect(policy.contains("script-src 'self'"))
            #expect(!policy.contains("unsafe-inline"))
            let html = String(decoding: body, as: UTF8.self)
            #expect(html.contains("<script src=\"/assets/dashboard.js\""))
            #expect(!html.contains("<script>"))
            let (scriptStatus, _, script) = try await Self.request(base + "/assets/dashboard.js")
            #expect(scriptStatus == 200)
            // The page never puts data into the DOM as markup.
            #expect(!String(decoding: script, as: UTF8.self).contains(".innerHTML"))
        }
    }

    @Test func invalidStrategyIsAJSONErrorNamingTheField() async throws {
        try await withDashboard { base in
            let bad = Self.strategy.replacingOccurrences(of: #""op": ">""#, with: #""op": "=>""#)
            let (status, headers, body) = try await Self.request(base + "/api/backtest", method: "POST", body: Data(bad.utf8))
            #expect(status == 400)
            #expect(headers["Content-Type"]?.hasPrefix("application/json") == true)
            let error = try Self.error(body)
            #expect(error["code"] as? String == "INVALID_ARGUMENT")
            #expect(error["field"] as? String == "positions[0].entry.op")

            // What the service rejects keeps the service's own path.
            let negative = Self.strategy.replacingOccurrences(of: #""weight": 1"#, with: #""weight": -1"#)
            let (status2, _, body2) = try await Self.request(base + "/api/backtest", method: "POST", body: Data(negative.utf8))
            #expect(status2 == 400)
            #expect((try Self.error(body2)["field"] as? String)?.hasPrefix("run_backtest.strategy.positions[0]") == true)

            // A grid axis the batch cannot expand names the grid line.
            let batch = #"{"strategy": \#(Self.strategy), "grid": ["positions[0].entry.lhs"]}"#
            let (status3, _, body3) = try await Self.request(base + "/api/batches", method: "POST", body: Data(batch.utf8))
            #expect(status3 == 400)
            #expect((try Self.error(body3)["field"] as? String)?.hasPrefix("grid[0]") == true)

            // What the service finds wrong with a grid before the batch starts is a JSON error too,
            // with the service's path, not an event stream.
            let unknown = #"{"strategy": \#(Self.strategy), "grid": ["positions[3].weight=1,2"]}"#
            let (status4, headers4, body4) = try await Self.request(base + "/api/batches", method: "POST", body: Data(unknown.utf8))
            #expect(status4 == 400)
            #expect(headers4["Content-Type"]?.hasPrefix("application/json") == true)
            let field4 = try Self.error(body4)["field"] as? String
            #expect(field4?.hasPrefix("run_batch.grid") == true, "field \(field4 ?? "nil")")
        }
    }

    @Test func bodiesAreBoundedAndErrorsNeverEchoUnboundedInput() async throws {
        try await withDashboard(maxBodyBytes: 4096) { base in
            let huge = Data(repeating: UInt8(ascii: "x"), count: 64 * 1024)
            let (status, _, body) = try await Self.request(base + "/api/backtest", method: "POST", body: huge)
            #expect(status == 413)
            #expect(try Self.error(body)["code"] as? String == "RESOURCE_EXHAUSTED")

            // An unknown key of 3,000 characters comes back cut short.
            let key = String(repeating: "k", count: 3000)
            let (status2, _, body2) = try await Self.request(
                base + "/api/batches", method: "POST", body: Data(#"{"\#(key)": 1}"#.utf8))
            #expect(status2 == 400)
            #expect(body2.count < 1000)
        }
    }

    @Test func backtestAnswersTheResultWithNamesAsJSONText() async throws {
        try await withDashboard { base in
            let (status, headers, body) = try await Self.request(base + "/api/backtest", method: "POST", body: Data(Self.strategy.utf8))
            #expect(status == 200)
            // JSON, never HTML: the browser will not sniff it into a document.
            #expect(headers["X-Content-Type-Options"] == "nosniff")
            let result = try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
            #expect(result["strategy_name"] as? String == "<img src=x onerror=alert(1)>")
            #expect((result["equity_curve"] as? [Any])?.isEmpty == false)
            #expect(result["benchmark_metrics"] is [String: Any])
        }
    }

    @Test func batchStreamsUpdatesThenStatusVariantAndCSV() async throws {
        try await withDashboard { base in
            let batch = #"{"strategy": \#(Self.strategy), "grid": ["positions[0].entry.lhs=sma:5,sma:10", "positions[0].entry.rhs=sma:50,sma:100"]}"#
            let (status, headers, body) = try await Self.request(base + "/api/batches", method: "POST", body: Data(batch.utf8))
            #expect(status == 200)
            #expect(headers["Content-Type"]?.hasPrefix("text/event-stream") == true)
            let events = String(decoding: body, as: UTF8.self).components(separatedBy: "\n\n").filter { !$0.isEmpty }
            #expect(events.last == "event: end\ndata: {}")
            let updates = try events.filter { $0.hasPrefix("event: update") }.map { event in
                try #require(try JSONSerialization.jsonObject(with: Data(event.dropFirst("event: update\ndata: ".count).utf8)) as? [String: Any])
            }
            let first = try #require(updates.first)
            let id = try #require(first["batch_id"] as? String)
            #expect(first["header"] as? String == "Partial Results (0/4 complete)")
            #expect(updates.last?["header"] as? String == "Final Results")
            let streamed = updates.flatMap { ($0["results"] as? [[String: Any]]) ?? [] }
            #expect(Set(streamed.compactMap { $0["index"] as? Int }) == [0, 1, 2, 3])

            let (statusCode, _, statusBody) = try await Self.request(base + "/api/batches/\(id)?known=0-1")
            #expect(statusCode == 200)
            let answer = try #require(try JSONSerialization.jsonObject(with: statusBody) as? [String: Any])
            #expect(answer["state"] as? String == "final")
            #expect(Set((answer["results"] as? [[String: Any]] ?? []).compactMap { $0["index"] as? Int }) == [2, 3])

            let (variantCode, _, variantBody) = try await Self.request(base + "/api/batches/\(id)/variants/2")
            #expect(variantCode == 200)
            let full = try #require(try JSONSerialization.jsonObject(with: variantBody) as? [String: Any])
            #expect((full["equity_curve"] as? [Any])?.isEmpty == false)

            let (csvCode, csvHeaders, csv) = try await Self.request(base + "/api/batches/\(id)/csv?sort=sharpe")
            #expect(csvCode == 200)
            #expect(csvHeaders["Content-Type"]?.hasPrefix("text/csv") == true)
            let lines = String(decoding: csv, as: UTF8.self).split(separator: "\r\n")
            #expect(lines.count == 5)
            #expect(lines.dropFirst().allSatisfy { $0.contains("<img src=x onerror=alert(1)>") })

            let (missing, _, missingBody) = try await Self.request(base + "/api/batches/no-such-batch")
            #expect(missing == 404)
            #expect(try Self.error(missingBody)["field"] as? String == "get_batch_status.batch_id")
        }
    }

    @Test("--variant-delay-ms: a paced batch, FULL or SUMMARY, still streams every variant once, then Final",
          arguments: ["full", "summary"])
    func pacedBatchDeliversEveryVariantOnce(detail: String) async throws {
        try await withDashboard(variantDelay: .milliseconds(5)) { base in
            let batch = #"{"strategy": \#(Self.strategy), "detail": "\#(detail)", "grid": ["positions[0].entry.lhs=sma:5,sma:10", "positions[0].entry.rhs=sma:50,sma:100"]}"#
            let (status, _, body) = try await Self.request(base + "/api/batches", method: "POST", body: Data(batch.utf8))
            #expect(status == 200)
            let updates = try String(decoding: body, as: UTF8.self).components(separatedBy: "\n\n")
                .filter { $0.hasPrefix("event: update") }
                .map { event in
                    try #require(try JSONSerialization.jsonObject(with: Data(event.dropFirst("event: update\ndata: ".count).utf8)) as? [String: Any])
                }
            let indices = updates.flatMap { ($0["results"] as? [[String: Any]]) ?? [] }.compactMap { $0["index"] as? Int }
            #expect(indices.sorted() == [0, 1, 2, 3])
            #expect(updates.last?["header"] as? String == "Final Results")
        }
    }

    @Test func largeCSVIsStreamedCompleteAndAHangUpStopsItsWork() async throws {
        let pace = PagePace()
        try await withDashboard(pages: pace) { base in
            // 60 × 50 = 3,000 SUMMARY variants.
            let batch = #"{"strategy": \#(Self.strategy), "detail": "summary", "grid": ["positions[0].entry.lhs=sma:2..61", "positions[0].entry.rhs=sma:70..119"]}"#
            let (status, _, body) = try await Self.request(base + "/api/batches", method: "POST", body: Data(batch.utf8))
            #expect(status == 200)
            let first = try #require(String(decoding: body, as: UTF8.self).components(separatedBy: "\n\n").first { $0.hasPrefix("event: update") })
            let update = try #require(try JSONSerialization.jsonObject(with: Data(first.dropFirst("event: update\ndata: ".count).utf8)) as? [String: Any])
            let id = try #require(update["batch_id"] as? String)
            let total = try #require(update["total"] as? Int)
            #expect(total == 3000)
            let port = try #require(Int(base.split(separator: ":").last ?? ""))

            // Complete, in order, and streamed: chunked framing, no length, several chunks.
            let response = try await RawHTTPClient.get(port: port, path: "/api/batches/\(id)/csv?sort=sharpe")
            #expect(response.head.hasPrefix("HTTP/1.1 200"), "\(String(decoding: response.body, as: UTF8.self))")
            #expect(response.isChunked)
            #expect(response.header("Content-Length") == nil)
            #expect(response.chunks.count > 1, "\(response.chunks.count) chunk(s)")
            let lines = String(decoding: response.body, as: UTF8.self).components(separatedBy: "\r\n").dropLast()
            #expect(lines.count == total + 1)
            let header = lines.first?.components(separatedBy: ",") ?? []
            let rows = lines.dropFirst().map { Self.csvFields($0) }
            #expect(rows.map { $0.first ?? "" } == (1...total).map(String.init))
            #expect(Set(rows.compactMap { Int($0[1]) }) == Set(0..<total))
            // Best Sharpe first: the numbers never rise down the table.
            let sharpe = try #require(header.firstIndex(of: "sharpe"))
            let values = rows.compactMap { Double($0[sharpe]) }
            #expect(!values.isEmpty)
            #expect(zip(values, values.dropFirst()).allSatisfy { $0 >= $1 })

            // A client that hangs up early: the download's work stops rather than running on.
            // Loopback socket buffers can hold the whole 3,000-row table, so unpaced the writer
            // may finish before the hang-up reaches it (it did in 3 of 8 runs); pacing every page
            // after the first keeps it writing for seconds after the client has gone.
            pace.delay.withLock { $0 = .milliseconds(400) }
            let before = BatchCSV.counts.stopped
            let head = try await RawHTTPClient.getAndHangUp(port: port, path: "/api/batches/\(id)/csv?sort=sharpe", bodyBytes: 1)
            #expect(head.hasPrefix("HTTP/1.1 200"))
            var waited = 0
            while BatchCSV.counts.stopped == before, waited < 600 {
                try await Task.sleep(for: .milliseconds(100))
                waited += 1
            }
            #expect(BatchCSV.counts.stopped > before, "the CSV writer did not stop after the client hung up")
        }
    }

    /// How long `PacedPages` waits before each page of finished results (zero: not at all).
    final class PagePace: Sendable {
        let delay = Mutex(Duration.zero)
    }

    /// `inner`, with `finishedResults` (the CSV writer's paging) slowed down by `pace`.
    struct PacedPages: BacktestService {
        let inner: any BacktestService
        let pace: PagePace

        func finishedResults(batchID: String, positions: [Int], context: CallContext) async throws -> ProgressUpdate {
            let delay = pace.delay.withLock { $0 }
            if delay > .zero { try await Task.sleep(for: delay) }
            return try await inner.finishedResults(batchID: batchID, positions: positions, context: context)
        }
        func runBacktest(_ request: BacktestRequest, context: CallContext) async throws -> BacktestResult {
            try await inner.runBacktest(request, context: context)
        }
        func runBatch(_ request: BatchRequest, context: CallContext, emit: @escaping @Sendable (ProgressUpdate) async throws -> Void) async throws {
            try await inner.runBatch(request, context: context, emit: emit)
        }
        func batchStatus(id: String, knownIndices: Set<Int>, context: CallContext) async throws -> ProgressUpdate {
            try await inner.batchStatus(id: id, knownIndices: knownIndices, context: context)
        }
        func serverInfo() async -> ServerInfo { await inner.serverInfo() }
        func purgeCache() async throws -> PurgeCacheResult { try await inner.purgeCache() }
        func cancelBatch(id: String, context: CallContext) async throws -> ProgressUpdate {
            try await inner.cancelBatch(id: id, context: context)
        }
        func variantResults(batchID: String, selection: VariantSelection, context: CallContext) async throws -> [VariantResult] {
            try await inner.variantResults(batchID: batchID, selection: selection, context: context)
        }
        func indicators(_ request: IndicatorsRequest, context: CallContext) async throws -> IndicatorsResult {
            try await inner.indicators(request, context: context)
        }
    }

    /// The fields of a CSV line (quoted fields may hold commas; quotes are doubled).
    static func csvFields(_ line: String) -> [String] {
        var fields: [String] = []
        var field = ""
        var quoted = false
        var previous: Character?
        for character in line {
            if character == "\"" {
                if quoted, previous == "\"" { field.append("\"") }
                quoted.toggle()
            } else if character == ",", !quoted {
                fields.append(field)
                field = ""
            } else {
                field.append(character)
            }
            previous = character
        }
        fields.append(field)
        return fields
    }

    // MARK: Harness

    /// Runs `body` against a dashboard on 127.0.0.1 (a free port), then shuts it down.
    func withDashboard(
        maxBodyBytes: Int = WebConfiguration.defaultMaxBodyBytes, variantDelay: Duration = .zero, pages: PagePace? = nil,
        _ body: (String) async throws -> Void
    ) async throws {
        var logger = Logger(label: "test.web")
        logger.logLevel = .critical
        let source = try MarketDataSource.parse("demo").makeProvider(logger: logger)
        let pipeline = BacktestPipeline(source: source, cache: nil, engines: EngineSelection(), logger: logger)
        let service = EngineBacktestService(
            pipeline: pipeline, jobs: BatchJobRegistry(), maxParallel: 2, variantDelay: variantDelay, serverVersion: "web-test")
        let dashboard = WebDashboard(
            service: pages.map { PacedPages(inner: service, pace: $0) } ?? service, configuration: WebConfiguration(host: "127.0.0.1", port: 0, maxBodyBytes: maxBodyBytes), logger: logger)
        let (ports, portSink) = AsyncStream<Int>.makeStream()
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [.init(service: dashboard.application(onRunning: { portSink.yield($0) }))], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            do {
                try await body("http://127.0.0.1:\(port)")
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    static func request(_ url: String, method: String = "GET", body: Data? = nil) async throws -> (Int, [String: String], Data) {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        request.httpBody = body
        if body != nil { request.setValue("application/json", forHTTPHeaderField: "Content-Type") }
        request.timeoutInterval = 60
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = try #require(response as? HTTPURLResponse)
        var headers: [String: String] = [:]
        for (key, value) in http.allHeaderFields {
            if let key = key as? String, let value = value as? String { headers[key] = value }
        }
        // Header names as sent are case-insensitive: normalise the ones tests read.
        for name in ["Content-Type", "Content-Security-Policy", "X-Content-Type-Options"] {
            if headers[name] == nil, let match = headers.first(where: { $0.key.lowercased() == name.lowercased() }) { headers[name] = match.value }
        }
        return (http.statusCode, headers, data)
    }

    static func error(_ body: Data) throws -> [String: Any] {
        let object = try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
        return try #require(object["error"] as? [String: Any])
    }
}
