import BacktestCore
import BacktestTestSupport
import Synchronization
import Testing
@testable import MarketData

/// A clock that moves only when someone sleeps on it.
private struct VirtualClock {
    let clock = ManualClock(unixSeconds: 1_700_000_000, onSleep: .advanceTime)
    var now: Double { clock.now.unixTime }
    var environment: RetryEnvironment { RetryEnvironment(clock: clock, unitRandom: { 0.5 }) }
}

@Suite("Pacing requests under Alpaca's per-minute quota")
struct RequestPacerTests {
    @Test func noMoreThanTheLimitInAnyWindow() async throws {
        let clock = VirtualClock()
        let start = clock.now
        let pacer = RequestPacer(limit: 3, window: 60, environment: clock.environment)
        var sendTimes: [Double] = []
        for _ in 0..<7 {
            try await pacer.waitForSlot()
            sendTimes.append(clock.now - start)
        }
        #expect(sendTimes == [0, 0, 0, 60, 60, 60, 120])
        for (index, time) in sendTimes.enumerated() {
            let inWindow = sendTimes.filter { $0 > time - 60 && $0 <= time }.count
            #expect(inWindow <= 3, "request \(index) at \(time) s")
        }
    }

    @Test func zeroTurnsPacingOff() async throws {
        let clock = VirtualClock()
        let pacer = RequestPacer(limit: 0, environment: clock.environment)
        for _ in 0..<1000 { #expect(try await pacer.waitForSlot() == 0) }
        #expect(clock.now == 1_700_000_000)
    }

    @Test func theProviderWaitsInsteadOfSendingOverTheQuota() async throws {
        try await withFakeAlpaca { server in
            let clock = VirtualClock()
            let configuration = AlpacaConfiguration(
                keyID: server.configuration.keyID, secretKey: server.configuration.secretKey,
                baseURL: server.baseURL, feed: "iex", pageLimit: 50, requestsPerMinute: 2)
            let provider = AlpacaProvider(configuration: configuration, retryEnvironment: clock.environment)
            // About 62 bars for one symbol at 50 per page: two pages.
            let query = BarQuery(symbols: ["AAPL"], range: date("2020-01-02")...date("2020-03-31"), adjustment: .split)
            let first = try await provider.dailyBars(query)
            #expect(first.apiCalls == 2)
            #expect(clock.now == 1_700_000_000, "two requests fit in the quota")
            let second = try await provider.dailyBars(query)
            #expect(second.apiCalls == 2)
            #expect(second.bars["AAPL"] == first.bars["AAPL"])
            #expect(clock.now - 1_700_000_000 >= 60, "the third request waited for the window to move")
            #expect(server.requestCount == 4, "no request was refused with 429")
        }
    }
}
