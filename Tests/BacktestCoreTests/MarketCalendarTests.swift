import BacktestCore
import BacktestTestSupport
import Testing

@Suite struct MarketCalendarTests {
    let calendar = MarketCalendar.nyse

    /// SPY traded on exactly the NYSE's trading days: every row is one, and every trading day
    /// between the first and last row has a row (9/11, Reagan, Ford, Sandy, Bush included).
    @Test func reproducesSPYTradingDaysExactly() throws {
        let spy = try SharedData.rawBars("SPY")
        let expected = calendar.tradingDays(in: spy.dates.first!...spy.dates.last!)
        #expect(expected.count == spy.count)
        #expect(Set(expected).symmetricDifference(spy.dates).sorted().map(\.iso) == [])
    }

    @Test func tradingDayCountEqualsTheListedDays() {
        var generator = SystemRandomNumberGenerator()
        let first = TradingDate(iso: "1993-01-01")!
        var ranges = [(first, TradingDate(iso: "2026-12-31")!), (TradingDate(iso: "2005-01-01")!, TradingDate(iso: "2005-01-01")!),
                      (TradingDate(iso: "2021-12-31")!, TradingDate(iso: "2022-01-03")!)]
        for _ in 0..<300 {
            let start = first.advanced(by: Int.random(in: 0..<12_000, using: &generator))
            ranges.append((start, start.advanced(by: Int.random(in: 0..<800, using: &generator))))
        }
        for (from, through) in ranges {
            #expect(calendar.tradingDayCount(in: from...through) == calendar.tradingDays(in: from...through).count, "\(from)...\(through)")
        }
    }

    @Test func observanceRules() throws {
        func closed(_ iso: String) -> String? { calendar.closure(on: TradingDate(iso: iso)!) }
        #expect(closed("2022-01-01") == nil, "a Saturday New Year is not observed on Friday")
        #expect(calendar.isTradingDay(TradingDate(iso: "2021-12-31")!))
        #expect(closed("2017-01-02") == "New Year's Day", "a Sunday New Year moves to Monday")
        #expect(closed("2020-07-03") == "Independence Day", "a Saturday July 4 moves to Friday")
        #expect(closed("2021-12-24") == "Christmas Day")
        #expect(closed("2022-06-20") == "Juneteenth National Independence Day")
        #expect(closed("2021-06-18") == nil, "Juneteenth closes the market from 2022")
        #expect(closed("2024-03-29") == "Good Friday")
        #expect(closed("2025-01-09") == "National day of mourning (Jimmy Carter)")
    }

    @Test func earlyCloses() {
        func early(_ iso: String) -> Bool { calendar.isEarlyClose(TradingDate(iso: iso)!) }
        #expect(early("2019-07-03"))
        #expect(early("2023-11-24"))
        #expect(early("2020-12-24"))
        #expect(!early("2020-07-02"), "July 4 on a Saturday: the Friday is the holiday, no early close")
        #expect(!early("2023-11-22"))
        #expect(calendar.closeTime(on: TradingDate(iso: "2023-11-24")!)! == (13, 0))
        #expect(calendar.closeTime(on: TradingDate(iso: "2023-11-25")!) == nil)
    }

    @Test func tradingDayArithmeticAcrossWeekendsAndHolidays() {
        let monday = TradingDate(iso: "2023-07-03")!   // early close, July 4 is Tuesday
        #expect(calendar.tradingDay(0, before: monday) == monday)
        #expect(calendar.tradingDay(2, before: TradingDate(iso: "2023-07-05")!) == TradingDate(iso: "2023-06-30")!)
        #expect(calendar.tradingDay(2, before: TradingDate(iso: "2023-07-08")!) == TradingDate(iso: "2023-07-05")!,
                "from a Saturday, T-0 is Friday")
        #expect(calendar.nextTradingDay(after: TradingDate(iso: "2001-09-10")!) == TradingDate(iso: "2001-09-17")!)
    }
}

@Suite struct NewYorkTimeTests {
    @Test func daylightSavingTransitions2024() {
        // 2024-03-10 07:00:00Z is 03:00 EDT (the clock jumps from 01:59:59 EST).
        #expect(NewYorkTime.localTime(unixSeconds: 1_710_053_999).description == "2024-03-10 01:59:59 EST")
        #expect(NewYorkTime.localTime(unixSeconds: 1_710_054_000).description == "2024-03-10 03:00:00 EDT")
        // 2024-11-03 06:00:00Z is 01:00 EST (the clock falls back from 01:59:59 EDT).
        #expect(NewYorkTime.localTime(unixSeconds: 1_730_613_599).description == "2024-11-03 01:59:59 EDT")
        #expect(NewYorkTime.localTime(unixSeconds: 1_730_613_600).description == "2024-11-03 01:00:00 EST")
    }

    @Test func wallClockRoundTripsAndDailyBarStamps() {
        // Alpaca stamps daily bars at midnight New York: 05:00Z in winter, 04:00Z in summer.
        #expect(NewYorkTime.unixSeconds(date: TradingDate(iso: "2022-02-01")!, hour: 0, minute: 0) == 1_643_691_600)
        #expect(NewYorkTime.unixSeconds(date: TradingDate(iso: "2021-10-13")!, hour: 0, minute: 0) == 1_634_097_600)
        // 4 PM ET is 21:00Z in winter and 20:00Z in summer.
        let winter = NewYorkTime.unixSeconds(date: TradingDate(iso: "2024-01-15")!, hour: 16, minute: 0)
        let summer = NewYorkTime.unixSeconds(date: TradingDate(iso: "2024-07-15")!, hour: 16, minute: 0)
        #expect(winter % 86_400 == 21 * 3600)
        #expect(summer % 86_400 == 20 * 3600)
        #expect(NewYorkTime.localTime(unixSeconds: winter).hour == 16)
        // Before 1987-rule years and in 2006 (first Sunday of April).
        #expect(NewYorkTime.localTime(unixSeconds: NewYorkTime.unixSeconds(date: TradingDate(iso: "2006-04-01")!, hour: 12, minute: 0)).utcOffsetSeconds == -5 * 3600)
        #expect(NewYorkTime.localTime(unixSeconds: NewYorkTime.unixSeconds(date: TradingDate(iso: "2006-04-03")!, hour: 12, minute: 0)).utcOffsetSeconds == -4 * 3600)
    }
}
