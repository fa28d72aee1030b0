import BacktestCore
import Foundation
import Testing
@testable import MarketData

/// Issue 14 item 6: values no bar may have are rejected when loaded, in every source alike, with
/// an error naming the file or vendor, the ticker, the date and the column.
@Suite("Bad data is rejected at load")
struct BadDataTests {
    static let header = "date,open,high,low,close,volume,adjusted_close,dividend_amount,split_coefficient\n"
    static let good = "2021-01-04,10,11,9,10.5,1000,10.5,0,1\n"

    /// (the bad row, the column named, a fragment of the reason).
    static let cases: [(row: String, column: String, reason: String)] = [
        ("2021-01-05,10.5,12,10,0,2000,0,0,1", "close 0.0", "not a positive finite price"),
        ("2021-01-05,10.5,12,10,-1,2000,0,0,1", "close -1.0", "not a positive finite price"),
        ("2021-01-05,0,12,10,11,2000,0,0,1", "open 0.0", "not a positive finite price"),
        ("2021-01-05,10.5,12,10,inf,2000,0,0,1", "close", "not a number"),
        ("2021-01-05,10.5,9,10,9.5,2000,0,0,1", "high 9.0", "below the low 10.0"),
        ("2021-01-05,10.5,12,10,11,-5,0,0,1", "volume -5.0", "non-negative"),
        ("2021-01-05,10.5,12,10,11,2000,0,0,-2", "split_coefficient -2.0", "positive finite split ratio"),
        ("2021-01-05,10.5,12,10,11,2000,0,-0.1,1", "dividend_amount -0.1", "non-negative"),
        ("2021-01-05,10.5,12,10,11,2000,0,10.5,1", "dividend_amount 10.5", "adjustment factor would be <= 0"),
    ]

    @Test("files: the error names the file, the ticker, the line, the date and the column", arguments: cases.indices)
    func files(index: Int) async throws {
        let (row, column, reason) = Self.cases[index]
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("BAD.csv")
        try (Self.header + Self.good + row + "\n").write(to: file, atomically: true, encoding: .utf8)
        let files = try LocalFilesProvider(directory: directory)
        for adjustment in PriceAdjustment.allCases {
            do {
                _ = try await files.dailyBars(BarQuery(symbols: ["BAD"], range: date("2021-01-01")...date("2021-01-31"), adjustment: adjustment))
                Issue.record("\(row): loaded")
            } catch let error as BacktestError {
                #expect(error.message.contains(file.path), "\(error.message)")
                #expect(error.message.contains("BAD") && error.message.contains("line 3"), "\(error.message)")
                if !reason.contains("not a number") { #expect(error.message.contains("2021-01-05"), "\(error.message)") }
                #expect(error.message.contains(column) && error.message.contains(reason), "\(error.message)")
                #expect(error.code == (reason.contains("not a number") ? .invalidArgument : .dataLoss))
            }
        }
    }

    @Test("the same rules for any source's bars (Alpaca, demo): DATA_LOSS naming origin, ticker, date, column")
    func anySource() {
        var bars = DailyBars(symbol: "SPY")
        bars.append(date: date("2021-01-04"), open: 370, high: 372, low: 368, close: 371, volume: 1e6)
        bars.append(date: date("2021-01-05"), open: 371, high: 373, low: 369, close: 0, volume: 1e6)
        #expect(throws: BacktestError(
            .dataLoss, "Alpaca (x): SPY on 2021-01-05: close 0.0 is not a positive finite price; the data cannot be used")) {
            try bars.validate(origin: "Alpaca (x)")
        }
        bars.close[1] = 372
        #expect(bars.firstInvalidBar() == nil)
        bars.high[0] = .nan
        #expect(bars.firstInvalidBar()?.column == "high")
    }

    @Test("the demo source's bars pass the rules over its whole history")
    func demoIsValid() async throws {
        let demo = DemoProvider()
        for adjustment in PriceAdjustment.allCases {
            let answer = try await demo.dailyBars(BarQuery(symbols: ["AAPL", "SPY", "XOM"], range: date("2000-01-03")...date("2020-12-31"), adjustment: adjustment))
            #expect(answer.bars.count == 3)
        }
    }
}
