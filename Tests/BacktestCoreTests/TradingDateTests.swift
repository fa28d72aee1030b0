import BacktestCore
import Testing

@Suite struct TradingDateTests {
    @Test func epochAndKnownDays() {
        #expect(TradingDate(year: 1970, month: 1, day: 1)?.daysSinceEpoch == 0)
        #expect(TradingDate(year: 2000, month: 3, day: 1)?.daysSinceEpoch == 11_017)
        #expect(TradingDate(year: 1969, month: 12, day: 31)?.daysSinceEpoch == -1)
        #expect(TradingDate(year: 1970, month: 1, day: 1)?.weekday == 4)  // Thursday
        #expect(TradingDate(iso: "2024-11-24")?.weekday == 0)               // Sunday
        #expect(TradingDate(iso: "1969-12-28")?.weekday == 0)               // Sunday, before the epoch
    }

    @Test func roundTripsEveryDayOverFourCenturies() throws {
        var date = try #require(TradingDate(iso: "1800-01-01"))
        let end = try #require(TradingDate(iso: "2200-12-31"))
        var previousWeekday = (date.weekday + 6) % 7
        while date <= end {
            #expect(TradingDate(iso: date.iso) == date)
            #expect(TradingDate(yyyymmdd: date.yyyymmdd) == date)
            #expect(TradingDate(year: date.year, month: date.month, day: date.day) == date)
            #expect(date.weekday == (previousWeekday + 1) % 7)
            previousWeekday = date.weekday
            date = date.advanced(by: 1)
        }
    }

    @Test(arguments: ["2021-02-29", "2021-13-01", "2021-00-10", "2021-1-01", "20210101", "", "abcd-ef-gh", "2100-02-29"])
    func rejectsImpossibleOrMalformedDates(_ text: String) {
        #expect(TradingDate(iso: text) == nil)
    }

    @Test func leapDays() {
        #expect(TradingDate(iso: "2000-02-29") != nil)
        #expect(TradingDate(iso: "2024-02-29") != nil)
        #expect(TradingDate(yyyymmdd: 20_230_229) == nil)
    }
}
