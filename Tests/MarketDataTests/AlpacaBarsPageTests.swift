import BacktestCore
import Foundation
import Testing
@testable import MarketData

/// The bars page scanner against Foundation's JSON reading of the same bodies.
@Suite("Alpaca bars page scanner")
struct AlpacaBarsPageTests {
    @Test func anyJSONLayoutReadsTheSame() throws {
        let body = """
             { "extra" : {"nested": [1, -2.5e-3, true, false, null, {"a": "b\\"c"}]},
              "bars" : { "AAPL" : [ { "vw" : 1.5, "n" : 3, "c" : 1.25E2, "t" : "2022-03-09T05:00:00Z",
                "o" : 161.51, "h" : 163.41, "l" : -0.0, "v" : 88496480 } ],
                "TSLA":[{"t":"2022-03-09T05:00:00Z","o":839,"h":860.56,"l":832.01,"c":858.97,"v":19227323,"n":528531,"vw":850.616587}],
                "MSFT": null },
              "next_page_token" : "QUFQTHxEfDIwMjI=\\u002F\\ud83d\\ude00\\n" }
            """
        let page = try AlpacaBarsPage.parse(Array(body.utf8))
        #expect(page.nextPageToken == "QUFQTHxEfDIwMjI=/😀\n")
        let aapl = try #require(page.bars["AAPL"]?.first)
        #expect((aapl.open, aapl.high, aapl.low, aapl.close, aapl.volume) == (161.51, 163.41, -0.0, 125, 88_496_480))
        #expect(aapl.date == TradingDate(iso: "2022-03-09"))
        #expect(page.bars["TSLA"]?.first?.close == 858.97)
        #expect(page.bars["MSFT"] == nil)
    }

    @Test func valuesEqualFoundationsOnAGeneratedPage() throws {
        var generator = SystemRandomNumberGenerator()
        var symbols: [String: [[String: Any]]] = [:]
        for symbol in ["AAPL", "KO", "SPY"] {
            symbols[symbol] = (0..<300).map { day in
                [
                    "t": "2016-01-\(String(format: "%02d", day % 28 + 1))T05:00:00Z",
                    "o": Double.random(in: 0...1000, using: &generator), "h": Double.random(in: 0...1e6, using: &generator),
                    "l": Double.random(in: 0...1, using: &generator), "c": Double(Int.random(in: 0...500, using: &generator)) / 8,
                    "v": Double(Int.random(in: 0...1_000_000_000, using: &generator)), "n": 7, "vw": 1.5,
                ]
            }
        }
        let data = try JSONSerialization.data(withJSONObject: ["bars": symbols, "next_page_token": NSNull()])
        let page = try AlpacaBarsPage.parse(Array(data))
        #expect(page.nextPageToken == nil)
        for (symbol, rows) in symbols {
            let bars = try #require(page.bars[symbol])
            #expect(bars.count == rows.count)
            for (bar, row) in zip(bars, rows) {
                #expect(bar.open == row["o"] as? Double)
                #expect(bar.high == row["h"] as? Double)
                #expect(bar.low == row["l"] as? Double)
                #expect(bar.close == row["c"] as? Double)
                #expect(bar.volume == row["v"] as? Double)
            }
        }
    }

    @Test(arguments: [
        "", "{", #"{"bars":{"A":[{"t":"2021-01-04T05:00:00Z","o":1,"h":1,"l":1,"c":1,"v":1}]}"#, #"{"bars":[]}"#,
        #"{"bars":{"A":[{"t":1,"o":1,"h":1,"l":1,"c":1,"v":1}]}}"#, #"{"bars":{"A":[{"t":"x","o":"1","h":1,"l":1,"c":1,"v":1}]}}"#,
        #"{"bars":{"A":[{"t":"x","o":1.,"h":1,"l":1,"c":1,"v":1}]}}"#, #"{"bars":{}} x"#, #"{"bars":{},}"#, #"{"a":tru}"#,
        #"{"next_page_token":"\x"}"#, "{\"next_page_token\":\"a\u{1}\"}",
    ])
    func malformedBodiesAreUnavailable(body: String) {
        #expect(throws: BacktestError.self) { try AlpacaBarsPage.parse(Array(body.utf8)) }
    }
}
