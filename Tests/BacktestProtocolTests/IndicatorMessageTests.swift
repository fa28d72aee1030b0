import BacktestCore
import BacktestModel
import BacktestProtocol
import NIOCore
import Testing

/// GetIndicators on the wire (issue 15): CallRequest.get_indicators (30) and
/// CallResponse.indicators (30), both directions, NaN kept as the warm-up marker.
@Suite("GetIndicators messages")
struct IndicatorMessageTests {
    @Test func requestRoundTrips() throws {
        let method = CallMethod.indicators(IndicatorsRequest(
            ticker: "AAPL", series: ["sma:50", "macd:12,26,9:signal"], start: TradingDate(iso: "2020-01-02"),
            end: TradingDate(iso: "2020-12-31"), adjustment: .all))
        #expect(try CallRequest.decode(CallRequest(method: method).encoded()).method.get() == method)
        #expect(method.name == "GetIndicators")
        let open = CallMethod.indicators(IndicatorsRequest(ticker: "SPY", series: ["rsi"]))
        #expect(try CallRequest.decode(CallRequest(method: open).encoded()).method.get() == open)
    }

    @Test func handWrittenRequestIsFieldThirtyWithDefaults() throws {
        // CallRequest { get_indicators (30) { ticker: "XOM", series: "atr:14", series: "obv" } }
        let body = ProtoBytes.string(1, "XOM") + ProtoBytes.string(2, "atr:14") + ProtoBytes.string(2, "obv")
        let method = try CallRequest.decode(ByteBuffer(bytes: ProtoBytes.field(30, body))).method.get()
        #expect(method == .indicators(IndicatorsRequest(ticker: "XOM", series: ["atr:14", "obv"], start: nil, end: nil, adjustment: .split)))
    }

    @Test func badDatesAndAdjustmentNameTheField() throws {
        for (body, field) in [
            (ProtoBytes.string(1, "XOM") + ProtoBytes.string(3, "2020-13-01"), "get_indicators.start_date"),
            (ProtoBytes.string(1, "XOM") + ProtoBytes.string(4, "yesterday"), "get_indicators.end_date"),
            (ProtoBytes.string(1, "XOM") + ProtoBytes.varintField(5, 9), "get_indicators.adjustment"),
        ] {
            let error = try #require(CallRequest.decode(ByteBuffer(bytes: ProtoBytes.field(30, body))).method.failureValue)
            #expect(error.code == .invalidArgument)
            #expect(error.field == field)
        }
    }

    @Test func resultRoundTripsWithNaNForWarmUp() throws {
        let dates = ["2020-01-02", "2020-01-03", "2020-01-06"].map { TradingDate(iso: $0)! }
        let result = IndicatorsResult(
            ticker: "AAPL", adjustment: .raw, dates: dates, close: [300.35, 297.43, 299.8],
            series: [IndicatorSeriesValues(key: "sma:2", values: [.nan, 298.89, 298.615]),
                     IndicatorSeriesValues(key: "obv", values: [1, 2, 3])],
            dataSource: "files", warnings: [BacktestWarning(.demoData, message: "synthetic")])
        let decoded = try CallResponse.decode(CallResponse(result: .indicators(result)).encoded())
        guard case .indicators(let back)? = decoded.result else { Issue.record("no indicators result"); return }
        #expect(back.ticker == "AAPL" && back.adjustment == .raw && back.dates == dates && back.close == result.close)
        #expect(back.dataSource == "files" && back.warnings == result.warnings)
        #expect(back.series.map(\.key) == ["sma:2", "obv"])
        #expect(back.series[0].values[0].isNaN && Array(back.series[0].values[1...]) == [298.89, 298.615])
        #expect(back.series[1].values == [1, 2, 3])
    }

    @Test func resultWithValuesMissingForSomeDatesIsRejected() throws {
        let result = IndicatorsResult(
            ticker: "AAPL", adjustment: .split, dates: [TradingDate(iso: "2020-01-02")!], close: [1],
            series: [IndicatorSeriesValues(key: "sma:2", values: [1, 2])])
        #expect(throws: BacktestError.self) { try CallResponse.decode(CallResponse(result: .indicators(result)).encoded()) }
    }
}
