import BacktestCore
import BacktestTestSupport
import Foundation
import Testing

@Suite struct DailyBarsCSVTests {
    @Test func parsesBothLayoutsByHeaderName() throws {
        let plain = try DailyBarsCSV.parse(
            "date,open,high,low,close,volume\n2020-01-02,1,2,0.5,1.5,100\n2020-01-03,1.5,2.5,1,2,200\n",
            symbol: "X")
        #expect(plain.count == 2)
        #expect(plain.close == [1.5, 2])
        #expect(plain.splitRatio == [1, 1])
        #expect(plain.dividend == [0, 0])

        let reordered = try DailyBarsCSV.parse(
            "close,date,volume,open,low,high,split_coefficient,dividend_amount\r\n"
                + "10,2020-01-02,5,9,8,11,0,0.25\r\n",
            symbol: "Y")
        #expect(reordered.open == [9])
        #expect(reordered.high == [11])
        #expect(reordered.dividend == [0.25])
        #expect(reordered.splitRatio == [1], "split_coefficient 0 means no split")
    }

    @Test func renderThenParseIsIdentity() throws {
        let bars = try SharedData.rawBars("AAPL").slice(indices: 5000..<5400)
        #expect(try DailyBarsCSV.parse(DailyBarsCSV.render(bars), symbol: "AAPL") == bars)
    }

    @Test func errorsNameLineAndColumn() {
        #expect(throws: BacktestError.invalidArgument("X: line 3: close 'abc' is not a number")) {
            try DailyBarsCSV.parse("date,open,high,low,close,volume\n2020-01-02,1,1,1,1,1\n2020-01-03,1,1,1,abc,1\n", symbol: "X")
        }
        #expect(throws: BacktestError.invalidArgument("X: CSV header has no 'volume' column")) {
            try DailyBarsCSV.parse("date,open,high,low,close\n", symbol: "X")
        }
        #expect(throws: BacktestError.invalidArgument("X: line 3: date 2020-01-02 is not after the previous row's 2020-01-02")) {
            try DailyBarsCSV.parse("date,open,high,low,close,volume\n2020-01-02,1,1,1,1,1\n2020-01-02,1,1,1,1,1\n", symbol: "X")
        }
    }
}

@Suite struct PriceAdjustmentTests {
    struct ReferenceCloses: Decodable {
        let dates: [String]
        let close: [Double]
    }

    /// The reference indicator files carry the split-adjusted close they were computed on; our
    /// split adjustment of the raw file must reproduce it (AAPL has five splits in the file).
    @Test(arguments: ["AAPL", "XOM"])
    func splitAdjustmentMatchesReference(_ symbol: String) throws {
        let reference = try SharedData.reference("indicators/\(symbol).json", as: ReferenceCloses.self)
        let adjusted = try SharedData.rawBars(symbol).adjusted(.split)
        #expect(adjusted.dates.map(\.iso) == reference.dates)
        for (ours, theirs) in zip(adjusted.close, reference.close) {
            #expect(abs(ours - theirs) <= 1e-9 * abs(theirs))
        }
        #expect(adjusted.splitRatio.allSatisfy { $0 == 1 })
    }

    @Test func allAdjustmentCompoundsDividendsAfterSplits() {
        // Day 2 is a 2:1 split, day 3 pays a 1.0 dividend on a raw previous close of 50.
        let bars = DailyBars(
            symbol: "T", dates: (0..<4).map { TradingDate(daysSinceEpoch: Int32(18_000 + $0)) },
            open: [100, 100, 50, 50], high: [100, 100, 50, 50], low: [100, 100, 50, 50],
            close: [100, 100, 50, 50], volume: [10, 10, 20, 20],
            dividend: [0, 0, 0, 1.0], splitRatio: [1, 1, 2, 1])
        let split = bars.adjusted(.split)
        #expect(split.close == [50, 50, 50, 50])
        #expect(split.volume == [20, 20, 20, 20])
        #expect(split.dividend == [0, 0, 0, 1.0])
        let all = bars.adjusted(.all)
        #expect(all.close == [49, 49, 49, 50])  // factor 1 - 1/50 = 0.98 before the ex-date
        #expect(all.dividend == [0, 0, 0, 0])
        #expect(bars.adjusted(.raw) == bars)
    }

    @Test func mergePrefersNewerRowsAndKeepsOrder() {
        func bars(_ days: [Int32], _ price: Double) -> DailyBars {
            let n = days.count
            return DailyBars(
                symbol: "M", dates: days.map(TradingDate.init(daysSinceEpoch:)),
                open: Array(repeating: price, count: n), high: Array(repeating: price, count: n),
                low: Array(repeating: price, count: n), close: Array(repeating: price, count: n),
                volume: Array(repeating: 1, count: n))
        }
        let merged = bars([1, 2, 4], 1).merged(with: bars([2, 3, 5], 2))
        #expect(merged.dates.map(\.daysSinceEpoch) == [1, 2, 3, 4, 5])
        #expect(merged.close == [1, 2, 2, 1, 2])
        #expect(merged.slice(TradingDate(daysSinceEpoch: 2)...TradingDate(daysSinceEpoch: 4)).count == 3)
    }
}
