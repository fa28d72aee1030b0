import BacktestClient
import BacktestCore
import BacktestEngine
import BacktestModel
import BacktestServer
import BacktestService
import BacktestTestSupport
import Logging
import MarketData
import NIOCore
import Testing

/// The real service on the shared daily files, with a probe in the engine and a count of the
/// queries that reach the data source. `served` is what the test server runs: the service,
/// holding the update of variant `holdAfter` at `gate` when asked, and with `holdFetch` every
/// data fetch at `fetchGate` (a slow cold fetch, for as long as the test likes).
struct BatchFixture {
    let service: EngineBacktestService
    let served: HeldBatchService
    let source: CountingProvider
    let probe = EngineProbe()
    let gate = HoldGate()
    let fetchGate = HoldGate()

    init(holdAfter: Int? = nil, holdFetch: Bool = false, maxParallel: Int = 4, retention: Duration = .seconds(600),
         statusAnswerBytes: Int = ServerConfiguration().maxFramePayload / 2, abandonAfter: TimeAmount = .seconds(150),
         answerBound: AnswerBound = .none) throws {
        let files = try LocalFilesProvider(directory: SharedData.dailyDirectory)
        source = CountingProvider(base: holdFetch ? HeldProvider(base: files, gate: fetchGate) : files)
        var logger = Logger(label: "test.pipeline")
        logger.logLevel = .critical
        let pipeline = BacktestPipeline(source: source, cache: nil, engines: EngineSelection(primary: ProbedEngine(probe: probe)),
                                        logger: logger, answerBound: answerBound)
        service = EngineBacktestService(pipeline: pipeline, jobs: BatchJobRegistry(retention: retention),
                                        maxParallel: maxParallel, statusAnswerBytes: statusAnswerBytes,
                                        abandonAfter: abandonAfter, serverVersion: "test")
        served = HeldBatchService(base: service, holdAfter: holdAfter, gate: gate)
    }

    static let sixYears = BacktestSettings(start: TradingDate(iso: "2010-01-04")!, end: TradingDate(iso: "2015-12-31")!)
    static let tenYears = BacktestSettings(start: TradingDate(iso: "2010-01-04")!, end: TradingDate(iso: "2019-12-31")!)

    static let twentyTickers = [
        "AAPL", "MSFT", "JPM", "KO", "PFE", "INTC", "CSCO", "ORCL", "IBM", "HD",
        "MCD", "PEP", "PG", "JNJ", "MRK", "BA", "CAT", "DIS", "GE", "NVDA",
    ]

    /// `count` variants "v0", "v1", ...: each holds every ticker while its close is above its
    /// SMA, the SMA length differing per variant (10, 13, 16, ...), equal weights summing to 0.8.
    static func smaVariants(_ count: Int, tickers: [String] = ["AAPL", "MSFT", "JPM", "KO"]) -> [Strategy] {
        (0..<count).map { index in
            let length = Double(10 + 3 * index)
            return Strategy(name: "v\(index)", positions: tickers.map { ticker in
                Position(ticker: ticker, weight: 0.8 / Double(tickers.count), entry: .compare(
                    lhs: .series(SeriesRef(source: .field(.close))), op: .greater,
                    rhs: .series(SeriesRef(source: .indicator(IndicatorSpec(type: "sma", params: [length]))))))
            })
        }
    }
}

/// Collects a batch's updates; `partials` are the updates before the Final.
struct BatchOutcome {
    var updates: [ProgressUpdate] = []
    var partials: [ProgressUpdate] { updates.filter { $0.state == .partial } }
    var final: ProgressUpdate? { updates.last.flatMap { $0.state == .final ? $0 : nil } }

    /// Every variant's result by index; records an issue for a variant seen twice.
    var results: [Int: BacktestResult] {
        var byIndex: [Int: BacktestResult] = [:]
        for update in updates {
            for result in update.results {
                if byIndex[result.index] != nil { Issue.record("variant \(result.index) delivered twice") }
                if case .success(let backtest) = result.outcome { byIndex[result.index] = backtest }
                if case .failure(let error) = result.outcome { Issue.record("variant \(result.index) failed: \(error)") }
            }
        }
        return byIndex
    }

    static func collect(_ stream: AsyncThrowingStream<ProgressUpdate, any Error>) async throws -> BatchOutcome {
        var outcome = BatchOutcome()
        for try await update in stream { outcome.updates.append(update) }
        return outcome
    }
}

/// The parts of a result a simulation decides (timings differ from run to run).
func expectSameSimulation(_ actual: BacktestResult?, _ expected: BacktestResult?, _ what: String,
                          sourceLocation: SourceLocation = #_sourceLocation) {
    guard let actual, let expected else {
        Issue.record("\(what): missing result", sourceLocation: sourceLocation)
        return
    }
    #expect(actual.strategyName == expected.strategyName, "\(what)", sourceLocation: sourceLocation)
    #expect(actual.dates == expected.dates, "\(what): dates", sourceLocation: sourceLocation)
    #expect(actual.equity == expected.equity, "\(what): equity curve", sourceLocation: sourceLocation)
    #expect(actual.benchmark == expected.benchmark, "\(what): benchmark curve", sourceLocation: sourceLocation)
    #expect(actual.orders == expected.orders, "\(what): orders", sourceLocation: sourceLocation)
    #expect(actual.metrics == expected.metrics, "\(what): metrics", sourceLocation: sourceLocation)
    #expect(actual.benchmarkMetrics == expected.benchmarkMetrics, "\(what): benchmark metrics", sourceLocation: sourceLocation)
    #expect(actual.warnings == expected.warnings, "\(what): warnings", sourceLocation: sourceLocation)
}

/// A batch of `variants` streamed through a proxy the test can cut, one variant at a time: started,
/// its first update read, the server held at the fixture's gate after the next one, then cut.
struct CutBatch {
    let proxy: CuttableProxy
    let client: BacktestClient
    var updates: AsyncThrowingStream<ProgressUpdate, any Error>.AsyncIterator
    let first: ProgressUpdate

    static func start(_ fixture: BatchFixture, port: Int, variants: Int, reattach: ReattachPolicy) async throws -> CutBatch {
        let proxy = try await CuttableProxy.start(targetPort: port)
        let client = BacktestClient(port: proxy.port)
        var updates = client.runBatch(BatchFixture.smaVariants(variants), settings: BatchFixture.sixYears, maxParallel: 1,
                                      reattach: reattach).makeAsyncIterator()
        let first = try #require(try await updates.next())
        try await within("the batch reaching the gate") { () async -> Void in await fixture.gate.arrival() }
        proxy.cutAll()
        return CutBatch(proxy: proxy, client: client, updates: updates, first: first)
    }

    func close() async {
        await client.close()
        await proxy.stop()
    }
}

/// A provider whose every fetch waits at `gate` first.
struct HeldProvider: MarketDataProvider {
    let base: any MarketDataProvider
    let gate: HoldGate
    var name: String { base.name }
    var dataEpoch: TradingDate { base.dataEpoch }

    func dailyBars(_ query: BarQuery) async throws -> BarSet {
        try await gate.pass()
        return try await base.dailyBars(query)
    }
}
