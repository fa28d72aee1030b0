import BacktestCore
import FakeAlpaca
import Foundation
import Testing
@testable import MarketData

/// A hung vendor (accepts the connection, never answers) costs one time budget for the whole
/// fetch, never longer than the call's deadline, and ends in UNAVAILABLE naming the vendor.
@Suite("Alpaca fetch budget and call deadline")
struct FetchBudgetTests {
    let query = BarQuery(symbols: ["AAPL"], range: date("2020-01-01")...date("2020-03-31"), adjustment: .split)

    @Test("a hung vendor fails within the call's deadline, not after attempts x request timeout")
    func hungVendorRespectsTheDeadline() async throws {
        try await withFakeAlpaca { server in
            server.inject(Array(repeating: .stall, count: 10))
            // The production request timeout: without the deadline one attempt alone would hang 30 s.
            let alpaca = makeAlpaca(server, requestTimeout: .seconds(30))
            let error = await #expect(throws: BacktestError.self) {
                // 10 s: far below the 30 s one attempt would take, and long enough for the fake
                // to have received the request on a loaded machine (it counts arrivals; 5 s was
                // not, once, in a fresh-clone run of the whole suite on 2 cores).
                try await FetchDeadline.$current.withValue(ContinuousClock.now + .seconds(10)) {
                    try await alpaca.dailyBars(query)
                }
            }
            #expect(error?.code == .unavailable)
            let message = error?.message ?? ""
            #expect(message.contains("Alpaca (\(server.baseURL)"), "names the vendor")
            #expect(message.contains("call's deadline"), "says what ended it: \(message)")
            #expect(message.contains("attempt"), "says what was tried: \(message)")
            #expect(server.requestCount >= 1 && server.requestCount <= 2)
        }
    }

    @Test("without a deadline the fetch budget bounds every attempt together")
    func hungVendorRespectsTheBudget() async throws {
        try await withFakeAlpaca { server in
            server.inject(Array(repeating: .stall, count: 10))
            let alpaca = makeAlpaca(server, retry: RetryPolicy(maxTotalWait: .seconds(2)), requestTimeout: .seconds(30))
            let error = await #expect(throws: BacktestError.self) { try await alpaca.dailyBars(query) }
            #expect(error?.code == .unavailable)
            #expect(error?.message.contains("fetch budget of 2.0 s") == true, "\(error?.message ?? "")")
        }
    }

    @Test("the default budget is stated and well under a minute")
    func defaults() {
        #expect(RetryPolicy().maxTotalWait == .seconds(25))
        #expect(CurlHTTPClient.Configuration().requestTimeout == .seconds(10))
    }
}
