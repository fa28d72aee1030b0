import BacktestCore
import BacktestTestSupport
import Foundation
import Testing
@testable import MarketData

@Suite("Local CSV files provider")
struct LocalFilesProviderTests {
    @Test("the shared data: epoch, missing files, before-listing warning")
    func sharedData() async throws {
        let files = try filesProvider()
        #expect(files.name == "files")
        #expect(files.dataEpoch == date("1999-11-01"))
        let answer = try await files.dailyBars(
            BarQuery(symbols: ["TSLA", "NOPE", "SPY"], range: date("2005-01-01")...date("2021-04-21"), adjustment: .split))
        #expect(answer.missing == ["NOPE"])
        #expect(answer.bars["TSLA"]?.firstDate == date("2010-06-29"))
        #expect(answer.warnings.map(\.message) == ["TSLA: no data before 2010-06-29; using 2010-06-29...2021-04-21"])
        #expect(answer.warnings.map(\.kind) == [.noDataBefore])
        #expect(answer.bars["SPY"]?.lastDate == date("2020-08-28"))
        #expect(answer.apiCalls == 0)
    }

    @Test("adjustment is over the whole file, whatever the range: AAPL's 4:1 split of 2020-08-31")
    func adjustmentAsOfNewestData() async throws {
        let files = try filesProvider()
        let range = date("2020-08-24")...date("2020-09-04")
        let raw = try #require(try await files.dailyBars(BarQuery(symbols: ["AAPL"], range: range, adjustment: .raw)).bars["AAPL"])
        let split = try #require(try await files.dailyBars(BarQuery(symbols: ["AAPL"], range: range, adjustment: .split)).bars["AAPL"])
        let exDate = try #require(raw.index(of: date("2020-08-31")))
        #expect(raw.close[exDate - 1] / raw.close[exDate] > 3.5)  // the raw crash
        #expect(abs(split.close[exDate - 1] / split.close[exDate] - 1) < 0.1)
        // Equal to the whole history adjusted, then sliced.
        #expect(split == (try SharedData.rawBars("AAPL")).adjusted(.split).slice(range))
    }

    @Test("plain date,open,high,low,close,volume files work; the epoch is the earliest row")
    func plainFormat() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("md-files-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try "date,open,high,low,close,volume\n2021-01-04,10,11,9,10.5,1000\n2021-01-05,10.5,12,10,11,2000\n"
            .write(to: directory.appendingPathComponent("ABC.csv"), atomically: true, encoding: .utf8)
        try "date,open,high,low,close,volume\n2020-12-31,1,1,1,1,1\n"
            .write(to: directory.appendingPathComponent("BRK_B.csv"), atomically: true, encoding: .utf8)
        let files = try LocalFilesProvider(directory: directory)
        #expect(files.dataEpoch == date("2020-12-31"))
        let answer = try await files.dailyBars(BarQuery(symbols: ["abc"], range: date("2021-01-01")...date("2021-01-31"), adjustment: .all))
        #expect(answer.bars["ABC"]?.close == [10.5, 11])
    }

    @Test("a directory that does not exist is a clear error")
    func missingDirectory() {
        #expect(throws: BacktestError(.failedPrecondition, "market data directory /nonexistent/bars does not exist")) {
            try LocalFilesProvider(directory: URL(fileURLWithPath: "/nonexistent/bars"))
        }
    }
}
