import BacktestCore
import BacktestTestSupport
import FakeAlpaca
import Foundation
import Testing
@testable import MarketData

@Suite("Alpaca provider against the fake Alpaca server")
struct AlpacaProviderTests {
    @Test("one multi-symbol request, paged with a small limit, equals the files", arguments: [400, 700])
    func paginationAcrossPages(limit: Int) async throws {
        try await withFakeAlpaca { server in
            let alpaca = makeAlpaca(server, pageLimit: limit)
            let query = BarQuery(symbols: ["TSLA", "aapl", "MSFT"], range: date("2019-01-01")...date("2020-12-31"), adjustment: .split)
            let answer = try await alpaca.dailyBars(query)
            let expected = try await filesProvider().dailyBars(query)

            let totalBars = expected.bars.values.reduce(0) { $0 + $1.count }
            let pages = (totalBars + limit - 1) / limit
            #expect(pages >= 3)
            #expect(server.requestCount == pages)
            #expect(answer.apiCalls == pages)
            // Symbols are split across pages, so merging must append.
            #expect(totalBars % limit != 0)
            for symbol in ["AAPL", "MSFT", "TSLA"] {
                let bars = try #require(answer.bars[symbol])
                #expect(bars.pricesEqual(try #require(expected.bars[symbol])), "\(symbol)")
            }
            #expect(answer.missing.isEmpty)

            let queries = server.receivedQueries
            #expect(!queries[0].contains("page_token"))
            #expect(queries.dropFirst().allSatisfy { $0.contains("page_token=") })
            // Only the token changes from page to page.
            let withoutToken = queries.map { $0.split(separator: "&").filter { !$0.hasPrefix("page_token=") } }
            #expect(Set(withoutToken.map { $0.joined(separator: "&") }).count == 1)
        }
    }

    @Test("the request carries Alpaca's parameters, percent-encoded, with New York day bounds")
    func requestParameters() async throws {
        try await withFakeAlpaca { server in
            let alpaca = makeAlpaca(server)
            _ = try await alpaca.dailyBars(BarQuery(symbols: ["MSFT", "AAPL"], range: date("2020-01-02")...date("2020-07-01"), adjustment: .all))
            let query = try #require(server.receivedQueries.first)
            let items = Dictionary(uniqueKeysWithValues: query.split(separator: "&").map { item in
                let parts = item.split(separator: "=", maxSplits: 1)
                return (String(parts[0]), String(parts[1]))
            })
            #expect(items["symbols"] == "AAPL%2CMSFT")
            #expect(items["timeframe"] == "1Day")
            #expect(items["start"] == "2020-01-02T00%3A00%3A00-05%3A00")  // EST
            #expect(items["end"] == "2020-07-01T23%3A59%3A59-04%3A00")  // EDT
            #expect(items["adjustment"] == "all")
            #expect(items["feed"] == "iex")
            #expect(items["limit"] == "10000")
        }
    }

    @Test("Alpaca path equals files path for every adjustment", arguments: PriceAdjustment.allCases)
    func equalsFiles(adjustment: PriceAdjustment) async throws {
        try await withFakeAlpaca { server in
            let alpaca = makeAlpaca(server)
            let query = BarQuery(symbols: ["AAPL", "KO", "NVDA", "SPY", "TSLA"], range: date("2005-01-01")...date("2021-04-21"), adjustment: adjustment)
            let answer = try await alpaca.dailyBars(query)
            let expected = try await filesProvider().dailyBars(query)
            // One request per 10,000 bars, counted across symbols.
            let totalBars = expected.bars.values.reduce(0) { $0 + $1.count }
            #expect(answer.apiCalls == (totalBars + 9_999) / 10_000)
            #expect(server.requestCount == answer.apiCalls)
            for symbol in query.symbols {
                let bars = try #require(answer.bars[symbol])
                let reference = try #require(expected.bars[symbol])
                #expect(bars.pricesEqual(reference, relative: adjustment == .all ? 1e-9 : 0), "\(symbol) \(adjustment)")
            }
            #expect(answer.warnings == expected.warnings)
        }
    }

    @Test("a range from before the listing returns what exists, with a warning")
    func beforeListing() async throws {
        try await withFakeAlpaca { server in
            let answer = try await makeAlpaca(server).dailyBars(
                BarQuery(symbols: ["TSLA"], range: date("2005-01-03")...date("2010-12-31"), adjustment: .split))
            let bars = try #require(answer.bars["TSLA"])
            #expect(bars.firstDate == date("2010-06-29"))
            #expect(answer.warnings.map(\.message) == ["TSLA: no data before 2010-06-29; using 2010-06-29...2010-12-31"])
            #expect(answer.warnings.map(\.kind) == [.noDataBefore])
            #expect(answer.warnings.first?.tickers == ["TSLA"])
            #expect(answer.warnings.first?.dates == [TradingDate(iso: "2010-06-29")!, TradingDate(iso: "2010-12-31")!])
        }
    }

    @Test("a well-formed unknown symbol is reported missing, not an error")
    func unknownSymbol() async throws {
        try await withFakeAlpaca { server in
            let answer = try await makeAlpaca(server).dailyBars(
                BarQuery(symbols: ["AAPL", "ZZZZ"], range: date("2020-01-01")...date("2020-02-01"), adjustment: .raw))
            #expect(answer.missing == ["ZZZZ"])
            #expect(answer.bars["AAPL"]?.isEmpty == false)
            #expect(answer.bars["ZZZZ"] == nil)
        }
    }

    @Test("a malformed ticker fails before any request, naming it")
    func malformedTicker() async throws {
        try await withFakeAlpaca { server in
            let error = await #expect(throws: BacktestError.self) {
                try await makeAlpaca(server).dailyBars(
                    BarQuery(symbols: ["AAPL", "MS FT"], range: date("2020-01-01")...date("2020-02-01"), adjustment: .raw))
            }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.contains("MS FT") == true)
            #expect(server.requestCount == 0)
        }
    }

    @Test("a ticker Alpaca rejects with 400 invalid symbol becomes INVALID_ARGUMENT naming it")
    func vendorRejectsTicker() async throws {
        try await withFakeAlpaca { server in
            // BRK.Z follows our ticker syntax (so it reaches the vendor); Alpaca refuses it.
            server.inject([.custom(status: 400, body: #"{"code":40010001,"message":"invalid symbol: BRK.Z"}"#)])
            let error = await #expect(throws: BacktestError.self) {
                try await makeAlpaca(server).dailyBars(
                    BarQuery(symbols: ["AAPL", "BRK.Z"], range: date("2020-01-01")...date("2020-02-01"), adjustment: .raw))
            }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.contains("'BRK.Z'") == true)
            #expect(server.requestCount == 1)  // 400 is not retried
        }
    }

    @Test("wrong keys give UNAUTHENTICATED; missing keys fail before any request")
    func authentication() async throws {
        try await withFakeAlpaca { server in
            let wrong = await #expect(throws: BacktestError.self) {
                try await makeAlpaca(server, secretKey: "wrong").dailyBars(
                    BarQuery(symbols: ["AAPL"], range: date("2020-01-01")...date("2020-02-01"), adjustment: .raw))
            }
            #expect(wrong?.code == .unauthenticated)
            #expect(server.requestCount == 1)

            let configuration = AlpacaConfiguration(keyID: nil, secretKey: nil, baseURL: server.baseURL)
            #expect(configuration.baseURL == server.baseURL)
            #expect(!configuration.hasCredentials)
            let missing = await #expect(throws: BacktestError.self) {
                try await AlpacaProvider(configuration: configuration).dailyBars(
                    BarQuery(symbols: ["AAPL"], range: date("2020-01-01")...date("2020-02-01"), adjustment: .raw))
            }
            #expect(missing?.code == .unauthenticated)
            #expect(missing?.message.contains("APCA_API_KEY_ID") == true)
            #expect(server.requestCount == 1)
        }
    }

    @Test("403 for recent SIP data says what to do")
    func sipSubscription() async throws {
        try await withFakeAlpaca { server in
            server.inject([.custom(status: 403, body: "{\"message\":\"subscription does not permit querying recent SIP data\"}")])
            let error = await #expect(throws: BacktestError.self) {
                try await makeAlpaca(server).dailyBars(
                    BarQuery(symbols: ["AAPL"], range: date("2020-01-01")...date("2020-02-01"), adjustment: .raw))
            }
            #expect(error?.code == .permissionDenied)
            #expect(error?.message.contains("APCA_API_FEED=iex") == true)
        }
    }

    @Test("for SIP the end is kept 16 minutes behind now; an all-future range asks nothing")
    func sipEndClamp() async throws {
        try await withFakeAlpaca { server in
            let alpaca = makeAlpaca(server, feed: "sip")
            let today = NewYorkTime.date(unixSeconds: Int64(RecordingSleeper.now))  // 2023-11-14
            _ = try await alpaca.dailyBars(BarQuery(symbols: ["AAPL"], range: date("2023-11-01")...today, adjustment: .raw))
            let expectedEnd = RFC3339.utc(Int64(RecordingSleeper.now) - 16 * 60)
            #expect(expectedEnd == "2023-11-14T21:57:20Z")
            #expect(server.receivedQueries.first?.contains("end=\(AlpacaBarsRequest.percentEncoded(expectedEnd))") == true)

            let future = try await alpaca.dailyBars(BarQuery(symbols: ["AAPL"], range: today.advanced(by: 1)...today.advanced(by: 5), adjustment: .raw))
            #expect(future.missing == ["AAPL"])
            #expect(server.requestCount == 1)
        }
    }

    @Test("sequential pages reuse one keep-alive connection per worker thread")
    func connectionReuse() async throws {
        try await withFakeAlpaca { server in
            let alpaca = makeAlpaca(server, pageLimit: 200, threads: 1)
            let answer = try await alpaca.dailyBars(BarQuery(symbols: ["AAPL", "MSFT"], range: date("2020-01-01")...date("2020-12-31"), adjustment: .raw))
            #expect(answer.apiCalls >= 3)
            #expect(server.connectionCount == 1)
        }
    }
}
