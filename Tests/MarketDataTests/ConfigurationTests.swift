import BacktestCore
import Foundation
import Testing
@testable import MarketData

@Suite("Ticker validation at the sources and configuration")
struct ConfigurationTests {
    // The syntax itself is BacktestCore's `Ticker` (TickerTests); here every source applies it.
    @Test("every source rejects what is not a ticker before any I/O", arguments: ["BRK/B", "../etc/passwd", "AAPL\u{0}../../x", "aapl!", "A B"])
    func sourcesRejectMalformedTickers(input: String) async throws {
        let range = date("2021-01-01")...date("2021-01-31")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tickers-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let sources: [any MarketDataProvider] = [
            try LocalFilesProvider(directory: directory), DemoProvider(seed: 1),
            AlpacaProvider(configuration: AlpacaConfiguration(keyID: "id", secretKey: "secret", baseURL: "http://127.0.0.1:9")),
        ]
        for source in sources {
            let error = await #expect(throws: BacktestError.self, "\(source.name)") {
                try await source.dailyBars(BarQuery(symbols: [input], range: range, adjustment: .raw))
            }
            #expect(error?.code == .invalidArgument && error?.field == "symbols", "\(source.name)")
            #expect(error?.message.contains(Ticker.syntax) == true, "\(source.name)")
        }
    }

    // The Alpaca variables are parsed by backtestd's configuration reader (BacktestDaemonTests).

    @Test("the source option selects the provider")
    func sourceSelection() throws {
        #expect(try MarketDataSource.parse("demo").makeProvider().name == "demo")
        guard case .demo(let seed) = try MarketDataSource.parse("demo:42") else { Issue.record("not demo"); return }
        #expect(seed == 42)
        guard case .alpaca(let configuration) = try MarketDataSource.parse("alpaca") else {
            Issue.record("not alpaca")
            return
        }
        #expect(configuration.dataEpoch == date("2016-01-04"))
        guard case .files(let directory) = try MarketDataSource.parse("files:/data/bars") else { Issue.record("not files"); return }
        #expect(directory.path == "/data/bars")
        #expect(throws: BacktestError.self) { try MarketDataSource.parse("yahoo") }
        #expect(throws: BacktestError.self) { try MarketDataSource.parse("demo:x") }
    }

    @Test("URLs percent-encode everything but unreserved characters")
    func percentEncoding() {
        #expect(AlpacaBarsRequest.percentEncoded("A,B:C+D/E=F G") == "A%2CB%3AC%2BD%2FE%3DF%20G")
        let request = AlpacaBarsRequest(baseURL: "http://h:1/", symbols: ["A"], start: "s", end: "e", adjustment: .raw, feed: "iex", limit: 5)
        #expect(!request.url(pageToken: nil).contains("page_token"))
        #expect(!request.url(pageToken: "").contains("page_token"))
        #expect(request.url(pageToken: "QQ==").hasSuffix("&page_token=QQ%3D%3D"))
        #expect(request.url(pageToken: nil).hasPrefix("http://h:1/v2/stocks/bars?symbols=A&timeframe=1Day"))
    }
}
