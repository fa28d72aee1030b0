import BacktestCore
import BacktestTestSupport
import Testing

@Suite("Market calendar against SPY's real trading days")
struct MarketCalendarSPYTests {
    @Test("every day from SPY's first to last row is a trading day exactly when SPY has a row")
    func reproducesSPY() throws {
        let spy = try SharedData.rawBars("SPY")
        let first = try #require(spy.firstDate)
        let last = try #require(spy.lastDate)
        let calendarDays = MarketCalendar.nyse.tradingDays(in: first...last)
        let rows = Set(spy.dates)
        let extra = calendarDays.filter { !rows.contains($0) }
        let absent = spy.dates.filter { !MarketCalendar.nyse.isTradingDay($0) }
        #expect(extra.isEmpty, "calendar trades on days SPY has no bar: \(extra.prefix(10))")
        #expect(absent.isEmpty, "SPY has bars on days the calendar closes: \(absent.prefix(10))")
        #expect(calendarDays == spy.dates)
        #expect(spy.count > 5000)
    }

    @Test("trading-day arithmetic counts back over weekends and holidays")
    func tradingDayArithmetic() throws {
        let spy = try SharedData.rawBars("SPY")
        let calendar = MarketCalendar.nyse
        // "today minus N trading days" must land on SPY's row N before.
        for index in stride(from: 300, to: spy.count, by: 997) {
            #expect(calendar.tradingDay(252, before: spy.dates[index]) == spy.dates[index - 252])
        }
    }
}
