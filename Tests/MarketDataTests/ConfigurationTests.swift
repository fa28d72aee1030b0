import BacktestCore
import Foundation
import Testing
@testable import MarketData

@Suite("Ticker validation and configuration")
struct ConfigurationTests {
    @Test("tickers: share classes pass, lower case is upper-cased", arguments: [("aapl", "AAPL"), ("BRK.B", "BRK.B"), ("brk-b", "BRK-B"), ("BTC/USD", "BTC/USD")])
    func validTickers(input: String, normalized: String) throws {
        #expect(try TickerSymbol.normalized(input) == normalized)
    }

    @Test("malformed tickers are INVALID_ARGUMENT naming them", arguments: ["", "A B", ".A", "A:B", "A,B", "A&B", "ÄPPLE", String(repeating: "X", count: 22)])
    func invalidTickers(input: String) {
        #expect {
            try TickerSymbol.normalized(input)
        } throws: { error in
            guard let error = error as? BacktestError else { return false }
            return error.code == .invalidArgument && (input.isEmpty || error.message.contains(input))
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
