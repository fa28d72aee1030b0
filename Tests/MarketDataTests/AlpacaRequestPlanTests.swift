import BacktestCore
import BacktestTestSupport
import FakeAlpaca
import Testing
@testable import MarketData

/// Issue #17: requests packed so that each fits one page, sent side by side, for no more API calls
/// than the sequential pages.
@Suite("Alpaca request packing")
struct AlpacaRequestPlanTests {
    static let benchTickers = ["AAPL", "CSCO", "INTC", "JNJ", "JPM", "KO", "MSFT", "PG", "SPY", "WMT", "XOM"]

    @Test func elevenTickersSinceTheEpochAreTwoOnePageRequests() {
        let plan = AlpacaRequestPlan(symbols: Self.benchTickers, bars: { _ in 1172...1172 }, pageLimit: 10_000,
                                     maxSymbolsPerRequest: 100)
        #expect(plan.expectedCalls == 2, "no more than ceil(12,892 / 10,000) sequential pages")
        #expect(plan.requests.count == 2)
        #expect(plan.requests.allSatisfy { $0.count * 1172 <= 10_000 }, "each request fits one page")
        #expect(plan.requests.flatMap { $0 }.sorted() == Self.benchTickers)
        #expect(plan.requests.map(\.count).sorted() == [5, 6], "balanced: the least filled request first")
    }

    /// Bars no answer has shown yet may be fewer than the calendar allows (a listing inside the
    /// range): one request might then need fewer pages than packing needs requests, so the
    /// sequential layout is kept.
    @Test func uncertainBarsKeepTheSequentialPages() {
        let plan = AlpacaRequestPlan(symbols: Self.benchTickers, bars: { _ in 0...1172 }, pageLimit: 10_000,
                                     maxSymbolsPerRequest: 100)
        #expect(plan == AlpacaRequestPlan(requests: [Self.benchTickers], expectedCalls: 2))
        // Certain enough: ten known symbols alone are more than a page.
        let known = AlpacaRequestPlan(symbols: Self.benchTickers, bars: { $0 == "XOM" ? 0...1172 : 1172...1172 },
                                      pageLimit: 10_000, maxSymbolsPerRequest: 100)
        #expect(known.requests.count == 2)
        #expect(known.expectedCalls == 2)
    }

    @Test func whatFitsOnePageStaysOneRequest() {
        let plan = AlpacaRequestPlan(symbols: ["AAPL", "MSFT", "SPY"], bars: { _ in 2000...2000 }, pageLimit: 10_000,
                                     maxSymbolsPerRequest: 100)
        #expect(plan == AlpacaRequestPlan(requests: [["AAPL", "MSFT", "SPY"]], expectedCalls: 1))
    }

    @Test func packingThatWouldCostMoreCallsKeepsTheSequentialPages() {
        // 18,000 bars are two pages in a row; one page per symbol would be three calls.
        let plan = AlpacaRequestPlan(symbols: ["A", "B", "C"], bars: { _ in 6000...6000 }, pageLimit: 10_000,
                                     maxSymbolsPerRequest: 100)
        #expect(plan == AlpacaRequestPlan(requests: [["A", "B", "C"]], expectedCalls: 2))
    }

    @Test func aSymbolLargerThanAPageIsPagedOnItsOwnBesideTheRest() {
        let sizes = ["BIG": 15_000, "S1": 4000, "S2": 2000]  // 21,000: three pages in a row, or two beside one
        let plan = AlpacaRequestPlan(symbols: ["BIG", "S1", "S2"], bars: { sizes[$0]!...sizes[$0]! }, pageLimit: 10_000,
                                     maxSymbolsPerRequest: 100)
        #expect(plan == AlpacaRequestPlan(requests: [["BIG"], ["S1", "S2"]], expectedCalls: 3))
    }

    @Test func oneSymbolPerRequestIsKept() {
        let plan = AlpacaRequestPlan(symbols: ["A", "B", "C"], bars: { _ in 9000...9000 }, pageLimit: 10_000,
                                     maxSymbolsPerRequest: 1)
        #expect(plan == AlpacaRequestPlan(requests: [["A"], ["B"], ["C"]], expectedCalls: 3))
    }

    @Test func theSymbolCapIsKept() {
        let symbols = (0..<10).map { "S\($0)" }
        let plan = AlpacaRequestPlan(symbols: symbols, bars: { _ in 1500...1500 }, pageLimit: 10_000, maxSymbolsPerRequest: 4)
        #expect(plan.requests.allSatisfy { $0.count <= 4 })
        #expect(plan.expectedCalls <= 3)
        #expect(plan.requests.flatMap { $0 }.sorted() == symbols)
    }

    @Test func answersBoundTheBarsFromBothSides() {
        let spans = KnownSpans(calendar: .nyse)
        let calendar = MarketCalendar.nyse
        func days(_ from: String, _ through: String) -> Int { calendar.tradingDays(in: date(from)...date(through)).count }
        let range = date("2010-01-04")...date("2014-12-31")
        #expect(spans.bars("ABBV", in: range) == 0...days("2010-01-04", "2014-12-31"))

        // ABBV's first bar is 2013-01-02: none before it, from the range's start.
        var abbv = DailyBars(symbol: "ABBV")
        for day in calendar.tradingDays(in: date("2013-01-02")...date("2014-12-31")) {
            abbv.append(date: day, open: 1, high: 1, low: 1, close: 1, volume: 1)
        }
        spans.learn(from: BarSet(bars: ["ABBV": abbv], missing: ["ZZZ"]), symbols: ["ABBV", "ZZZ"], range: range)
        let listed = days("2013-01-02", "2014-12-31")
        #expect(spans.bars("ABBV", in: range) == listed...listed)
        #expect(spans.bars("ABBV", in: date("2012-01-03")...date("2012-12-31")) == 0...0)
        #expect(spans.bars("ABBV", in: date("2014-01-02")...date("2016-12-30"))
            == days("2014-01-02", "2014-12-31")...days("2014-01-02", "2016-12-30"), "beyond what was asked, only the calendar")
        #expect(spans.bars("ABBV", in: date("2009-12-01")...date("2009-12-31")) == 0...days("2009-12-01", "2009-12-31"))
        #expect(spans.bars("ZZZ", in: range) == 0...0, "a symbol with no bars has none where it was asked")
    }

    /// The bench's cold query against the fake vendor: the two requests are in flight at the same
    /// time (both arrive while the fake holds its answers), and they are the two calls the
    /// sequential pages cost.
    @Test func packedRequestsRunConcurrentlyForNoMoreCalls() async throws {
        try await withFakeAlpaca { server in
            // Held answers must not time out and be retried, however slow a loaded machine is.
            let alpaca = makeAlpaca(server, requestTimeout: .seconds(60), threads: 4)
            let query = BarQuery(symbols: Self.benchTickers, range: date("2016-01-04")...date("2020-08-28"), adjustment: .split)
            let expected = try await filesProvider().dailyBars(query)
            let totalBars = expected.bars.values.reduce(0) { $0 + $1.count }
            let sequentialPages = (totalBars + 9999) / 10_000
            #expect(sequentialPages == 2)
            // The first fetch of these symbols: their bars are not known yet, so pages in a row.
            let first = try await alpaca.dailyBars(query)
            #expect(first.apiCalls == sequentialPages)
            #expect(server.requestCount == sequentialPages)
            #expect(server.receivedQueries.last?.contains("page_token") == true)
            // Every symbol's bars in the range are known now: the next fetch (after a cache purge,
            // say) is packed.
            #expect(alpaca.spans.bars("AAPL", in: query.range) == expected.bars["AAPL"]!.count...expected.bars["AAPL"]!.count)

            server.holdResponses()
            let fetch = Task { try await alpaca.dailyBars(query) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await server.waitForRequests(sequentialPages + 2) }
                group.addTask {
                    try await Task.sleep(for: .seconds(20))
                    server.releaseHeldResponses()  // lets a sequential second page come, ending the wait
                    throw BacktestError(.deadlineExceeded, "the second request did not arrive while the first was held")
                }
                try await group.next()
                group.cancelAll()
            }
            #expect(server.requestCount == sequentialPages + 2, "both requests in flight at once")
            server.releaseHeldResponses()
            let answer = try await fetch.value
            #expect(answer.apiCalls == sequentialPages, "no more calls than the pages in a row")
            #expect(server.requestCount == 2 * sequentialPages)
            let packed = server.receivedQueries.suffix(2)
            #expect(!packed.contains { $0.contains("page_token") }, "each request fits one page")
            for symbol in Self.benchTickers {
                #expect(try #require(answer.bars[symbol]).pricesEqual(try #require(expected.bars[symbol])), "\(symbol)")
            }
        }
    }

    /// A query like the provider tests' (five symbols since 2005, TSLA listed in 2010, the fake's
    /// data ending 2020-08-28) costs what one paged request costs, the first time and after.
    @Test func aRangeWithALateListingCostsNoMoreCalls() async throws {
        try await withFakeAlpaca { server in
            let alpaca = makeAlpaca(server)
            let query = BarQuery(symbols: ["AAPL", "KO", "NVDA", "SPY", "TSLA"], range: date("2005-01-01")...date("2021-04-21"),
                                 adjustment: .split)
            let expected = try await filesProvider().dailyBars(query)
            let pages = (expected.bars.values.reduce(0) { $0 + $1.count } + 9_999) / 10_000
            for _ in 0..<2 {
                #expect(try await alpaca.dailyBars(query).apiCalls == pages)
            }
            #expect(server.requestCount == 2 * pages)
            let tsla = try #require(expected.bars["TSLA"]).count
            #expect(alpaca.spans.bars("TSLA", in: query.range) == tsla...tsla)
        }
    }
}
