import BacktestCore
import BacktestTestSupport
import FakeAlpaca
import Testing
@testable import MarketData

@Suite("Single flight and batched fetching")
struct CoalescingProviderTests {
    let query = BarQuery(symbols: ["AAPL", "MSFT", "TSLA"], range: date("2020-01-01")...date("2020-06-30"), adjustment: .split)

    /// Waits (bounded) until `count` callers are parked on `query`.
    func waitForWaiters(_ provider: CoalescingProvider, _ query: BarQuery, _ count: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while provider.waiterCount(for: query) < count {
            try #require(ContinuousClock.now < deadline, "waiters never arrived")
            await Task.yield()
        }
    }

    @Test("three concurrent identical queries cause one request and share its answer")
    func threeUsersOneFetch() async throws {
        try await withFakeAlpaca { server in
            let provider = CoalescingProvider(makeAlpaca(server))
            server.holdResponses()
            async let first = provider.dailyBars(query)
            async let second = provider.dailyBars(query)
            async let third = provider.dailyBars(query)
            await server.waitForRequests(1)
            try await waitForWaiters(provider, query, 3)
            server.releaseHeldResponses()
            let answers = try await [first, second, third]
            #expect(server.requestCount == 1)
            for answer in answers {
                #expect(answer.bars.keys.sorted() == ["AAPL", "MSFT", "TSLA"])
                #expect(answer.bars["AAPL"] == answers[0].bars["AAPL"])
            }
            // Finished flights are forgotten: a later query fetches again.
            _ = try await provider.dailyBars(query)
            #expect(server.requestCount == 2)
        }
    }

    @Test("a cancelled waiter stops waiting without cancelling the fetch of the others")
    func cancellationIsPerWaiter() async throws {
        try await withFakeAlpaca { server in
            let provider = CoalescingProvider(makeAlpaca(server))
            server.holdResponses()
            let leaver = Task { try await provider.dailyBars(query) }
            let stayer = Task { try await provider.dailyBars(query) }
            try await waitForWaiters(provider, query, 2)
            leaver.cancel()
            await #expect(throws: CancellationError.self) { try await leaver.value }
            server.releaseHeldResponses()
            let answer = try await stayer.value
            #expect(answer.bars.count == 3)
            #expect(server.requestCount == 1)
        }
    }

    @Test("an error reaches every waiter of the shared fetch")
    func errorsAreShared() async throws {
        try await withFakeAlpaca { server in
            let provider = CoalescingProvider(makeAlpaca(server, secretKey: "wrong"))
            server.holdResponses()
            let tasks = (0..<3).map { _ in Task { try await provider.dailyBars(query) } }
            try await waitForWaiters(provider, query, 3)
            server.releaseHeldResponses()
            for task in tasks {
                let error = await #expect(throws: BacktestError.self) { try await task.value }
                #expect(error?.code == .unauthenticated)
            }
            #expect(server.requestCount == 1)
        }
    }

    @Test("needs with the same range go in one multi-symbol request; the log says what that saved")
    func batchedFetch() async throws {
        try await withFakeAlpaca { server in
            let log = LogCapture()
            let provider = CoalescingProvider(makeAlpaca(server), logger: log.logger())
            let firstHalf2020 = date("2020-01-01")...date("2020-06-30")
            let year2019 = date("2019-01-01")...date("2019-12-31")
            let needs = [
                BarNeed(symbol: "AAPL", range: firstHalf2020), BarNeed(symbol: "msft", range: firstHalf2020),
                BarNeed(symbol: "TSLA", range: firstHalf2020), BarNeed(symbol: "KO", range: year2019),
                BarNeed(symbol: "AAPL", range: firstHalf2020),
            ]
            let answer = try await provider.fetch(needs, adjustment: .split)
            #expect(server.requestCount == 2)
            #expect(answer.apiCalls == 2)
            #expect(answer.bars.keys.sorted() == ["AAPL", "KO", "MSFT", "TSLA"])
            #expect(answer.bars["KO"]?.firstDate == date("2019-01-02"))
            // Naive cost: one call per ticker per trading day (SPY's rows are the trading days).
            let spy = try SharedData.rawBars("SPY")
            let naive = 3 * spy.slice(firstHalf2020).count + spy.slice(year2019).count
            #expect(log.messages.contains("Fetched 4 tickers in 2 API calls (was \(naive) calls)"))
        }
    }

    @Test("an invalid ticker fails the whole batched fetch, naming it")
    func batchedFetchInvalidTicker() async throws {
        try await withFakeAlpaca { server in
            let provider = CoalescingProvider(makeAlpaca(server))
            let range = date("2020-01-01")...date("2020-06-30")
            let error = await #expect(throws: BacktestError.self) {
                try await provider.fetch([BarNeed(symbol: "AAPL", range: range), BarNeed(symbol: "BAD!", range: range)], adjustment: .split)
            }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.contains("BAD!") == true)
            #expect(server.requestCount == 0)
        }
    }
}
