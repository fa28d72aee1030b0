import BacktestCore
import BacktestModel
import Foundation
import Testing

@testable import BacktestReporting

/// What `backtest indicators` prints: the JSON shape of shared/reference/indicators, CSV and the
/// table, and how `--series` lists split.
@Suite struct IndicatorDocumentTests {
    static let result = IndicatorsResult(
        ticker: "AAPL", adjustment: .split, dates: ["2020-01-02", "2020-01-03", "2020-01-06"].map { TradingDate(iso: $0)! },
        close: [75.0875, 74.3575, 74.95],
        series: [IndicatorSeriesValues(key: "sma:2", values: [.nan, 74.7225, 74.65375]),
                 IndicatorSeriesValues(key: "macd:12,26,9:signal", values: [.nan, .nan, 1e-05])],
        dataSource: "files")

    @Test func jsonHasTheReferenceShapeWithNullForWarmUp() throws {
        let data = IndicatorDocument(Self.result).json()
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.hasPrefix(#"{"ticker":"AAPL","adjustment":"split","dates":["2020-01-02","2020-01-03","2020-01-06"],"close":[75.0875,74.3575,74.95],"series":{"sma:2":[null,74.7225,74.65375],"macd:12,26,9:signal":[null,null,"#))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let series = try #require(json["series"] as? [String: [Any]])
        #expect(series["macd:12,26,9:signal"]?.last as? Double == 1e-05)
        #expect(json["source"] as? String == "files")
    }

    @Test func csvQuotesKeysWithCommasAndLeavesWarmUpEmpty() {
        let csv = IndicatorDocument(Self.result).csv()
        #expect(csv == """
            date,close,sma:2,"macd:12,26,9:signal"
            2020-01-02,75.0875,,
            2020-01-03,74.3575,74.7225,
            2020-01-06,74.95,74.65375,1e-05

            """)
    }

    @Test func tableShowsTheLastRows() {
        let table = IndicatorDocument(Self.result).table(rows: 2)
        #expect(table.contains("3 dates 2020-01-02...2020-01-06, the last 2 shown"))
        #expect(!table.contains("2020-01-02  "))
        #expect(table.contains("2020-01-03") && table.contains("-"))
    }

    @Test func seriesListsSplitBetweenKeysNotBetweenParameters() {
        #expect(IndicatorSeriesList.split(["sma:50,rsi:14"]) == ["sma:50", "rsi:14"])
        #expect(IndicatorSeriesList.split(["macd:12,26,9:signal,bbands:20,2.5:upper", "obv"])
                == ["macd:12,26,9:signal", "bbands:20,2.5:upper", "obv"])
        #expect(IndicatorSeriesList.split(["rsi, sma:5"]) == ["rsi", "sma:5"])
        #expect(IndicatorSeriesList.split(["sma:5,,ema:3"]) == ["sma:5", "", "ema:3"])
    }
}
