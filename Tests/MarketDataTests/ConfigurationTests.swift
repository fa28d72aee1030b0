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

    @Test("Alpaca settings come from the SDKs' environment variables")
    func alpacaEnvironment() {
        let configuration = AlpacaConfiguration.fromEnvironment([
            "APCA_API_KEY_ID": "id", "APCA_API_SECRET_KEY": "secret",
            "APCA_API_DATA_URL": "http://127.0.0.1:9999", "APCA_API_FEED": "IEX",
        ])
        #expect(configuration.hasCredentials)
        #expect(configuration.baseURL == "http://127.0.0.1:9999")
        #expect(configuration.feed == "iex")
        #expect(configuration.dataEpoch == date("2016-01-04"))
        let defaults = AlpacaConfiguration.fromEnvironment(["APCA_API_KEY_ID": " "])
        #expect(!defaults.hasCredentials)
        #expect(defaults.baseURL == "https://data.alpaca.markets")
        #expect(defaults.feed == "sip")
        #expect(defaults.maxSymbolsPerRequest == 100)
        #expect(AlpacaConfiguration.fromEnvironment(["BACKTESTD_ALPACA_SYMBOLS_PER_REQUEST": "1"]).maxSymbolsPerRequest == 1)
        #expect(AlpacaConfiguration.fromEnvironment(["BACKTESTD_ALPACA_SYMBOLS_PER_REQUEST": "0"]).maxSymbolsPerRequest == 100)
        #expect(AlpacaConfiguration.fromEnvironment(["BACKTESTD_ALPACA_SYMBOLS_PER_REQUEST": "x"]).maxSymbolsPerRequest == 100)
    }

    @Test("the source option selects the provider")
    func sourceSelection() throws {
        #expect(try MarketDataSource.parse("demo").makeProvider().name == "demo")
        guard case .demo(let seed) = try MarketDataSource.parse("demo:42") else { Issue.record("not demo"); return }
        #expect(seed == 42)
        guard case .alpaca(let configuration) = try MarketDataSource.parse("alpaca", environment: ["APCA_API_FEED": "iex"]) else {
            Issue.record("not alpaca")
            return
        }
        #expect(configuration.feed == "iex")
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
