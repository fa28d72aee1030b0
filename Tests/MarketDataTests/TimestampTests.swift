import BacktestCore
import Foundation
import Testing
@testable import MarketData

@Suite("Timestamps: RFC 3339 and daily bars across DST")
struct TimestampTests {
    @Test("RFC 3339 forms Alpaca uses parse to the right instant", arguments: [
        ("2022-03-09T05:00:00Z", 1_646_802_000),
        ("2022-03-09T05:00:00.123456789Z", 1_646_802_000),
        ("2022-03-09T00:00:00-05:00", 1_646_802_000),
        ("2022-03-09T10:30:00+05:30", 1_646_802_000),
        ("1970-01-01T00:00:00Z", 0),
    ])
    func parse(text: String, unixSeconds: Int) {
        #expect(RFC3339.parse(text) == Int64(unixSeconds))
    }

    @Test("malformed timestamps are rejected", arguments: [
        "2022-03-09", "2022-03-09T05:00:00", "2022-03-09T05:00:00.Z", "2022-03-09T05:00:00.1234567890Z",
        "2022-02-30T05:00:00Z", "2022-03-09T25:00:00Z", "2022-03-09T05:00:00+0500", "",
    ])
    func rejects(text: String) {
        #expect(RFC3339.parse(text) == nil)
    }

    @Test("daily-bar stamps (New York midnight in UTC) give the trading date on both sides of DST", arguments: [
        ("2021-03-12T05:00:00Z", "2021-03-12"),  // Friday before spring-forward: EST
        ("2021-03-15T04:00:00Z", "2021-03-15"),  // Monday after: EDT
        ("2021-11-05T04:00:00Z", "2021-11-05"),  // Friday before fall-back: EDT
        ("2021-11-08T05:00:00Z", "2021-11-08"),  // Monday after: EST
        ("2006-04-03T04:00:00Z", "2006-04-03"),  // the pre-2007 rule: DST from the first Sunday of April
        ("2006-03-13T05:00:00Z", "2006-03-13"),
        ("2022-02-01T05:00:00Z", "2022-02-01"), ("2023-09-29T04:00:00.000000000Z", "2023-09-29"),
    ])
    func dailyStamps(stamp: String, trading: String) throws {
        let page = try AlpacaBarsPage.parse(Array("""
            {"bars":{"AAPL":[{"t":"\(stamp)","o":1,"h":2,"l":0.5,"c":1.5,"v":100,"n":3,"vw":1.2}]},"next_page_token":null}
            """.utf8))
        #expect(page.bars["AAPL"]?.first?.date == date(trading))
    }

    @Test("New York offsets agree with the system tz database around every DST switch 2000-2030")
    func offsetsMatchTzDatabase() throws {
        let newYork = try #require(TimeZone(identifier: "America/New_York"))
        for year in 2000...2030 {
            for month in [3, 4, 10, 11] {
                let start = Int64(date(String(format: "%04d-%02d-01", year, month)).daysSinceEpoch) * 86_400
                for hour in stride(from: start, to: start + 31 * 86_400, by: 1800) {
                    let expected = newYork.secondsFromGMT(for: Date(timeIntervalSince1970: Double(hour)))
                    if NewYorkTime.utcOffset(unixSeconds: hour) != expected {
                        Issue.record("offset differs at \(RFC3339.utc(hour))")
                        return
                    }
                }
            }
        }
    }

    @Test("request bounds cover whole New York days, with the right offset")
    func requestBounds() {
        #expect(RFC3339.newYork(date("2021-03-14"), hour: 0, minute: 0, second: 0) == "2021-03-14T00:00:00-05:00")
        #expect(RFC3339.newYork(date("2021-03-14"), hour: 23, minute: 59, second: 59) == "2021-03-14T23:59:59-04:00")
        #expect(RFC3339.utc(1_646_802_000) == "2022-03-09T05:00:00Z")
    }

    @Test("bars parse defensively: null or empty maps, null lists, absent token")
    func defensiveParsing() throws {
        for body in [#"{"bars":{},"next_page_token":null}"#, #"{"bars":null}"#, #"{"next_page_token":""}"#, #"{"bars":{"AAPL":null}}"#] {
            let page = try AlpacaBarsPage.parse(Array(body.utf8))
            let barCount = page.bars.values.reduce(0) { $0 + $1.count }
            #expect(barCount == 0)
            #expect(page.nextPageToken == nil)
        }
        #expect(throws: BacktestError.self) { try AlpacaBarsPage.parse(Array("<html>".utf8)) }
        #expect(throws: BacktestError.self) {
            try AlpacaBarsPage.parse(Array(#"{"bars":{"A":[{"t":"2021-01-04T05:00:00Z","o":1,"h":1,"l":1,"v":1}]}}"#.utf8))
        }
    }

    @Test("error bodies: JSON with or without code, or plain text")
    func errorBodies() {
        #expect(AlpacaFailure.vendorMessage(Array(#"{"code":42210000,"message":"invalid timeframe"}"#.utf8)) == "invalid timeframe")
        #expect(AlpacaFailure.vendorMessage(Array(#"{"message":"unexpected query parameter(s): limit"}"#.utf8)) == "unexpected query parameter(s): limit")
        #expect(AlpacaFailure.vendorMessage(Array("Bad\n  Gateway".utf8)) == "Bad Gateway")
        #expect(AlpacaFailure.vendorMessage([]) == "no message")
        #expect(AlpacaFailure.invalidSymbol(in: "invalid symbol: TAOP:NASDAQ") == "TAOP:NASDAQ")
        let limited = AlpacaFailure.from(HTTPResponse(status: 429, headers: [("x-ratelimit-reset", "1674044551")]))
        #expect(limited.isRetryable && limited.rateLimitResetAt == 1_674_044_551)
    }
}
