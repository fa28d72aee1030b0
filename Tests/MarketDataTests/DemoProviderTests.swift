import BacktestCore
import Foundation
import Testing
@testable import MarketData

@Suite("Embedded demo data")
struct DemoProviderTests {
    static let end = date("2024-06-28")
    let demo = DemoProvider(seed: 7, endDate: { DemoProviderTests.end })
    let everything = date("2000-01-03")...DemoProviderTests.end
    let symbols = ["AAPL", "BRK.B", "KO", "MSFT", "NVDA", "XYZ", "ZM", "TSLA", "GE", "F", "AMD", "PFE"]

    func bars(_ symbol: String, _ adjustment: PriceAdjustment = .raw, _ provider: DemoProvider? = nil) async throws -> DailyBars {
        let answer = try await (provider ?? demo).dailyBars(BarQuery(symbols: [symbol], range: everything, adjustment: adjustment))
        return try #require(answer.bars[symbol])
    }

    func logReturns(_ bars: DailyBars) -> [Double] {
        (1..<bars.count).map { log(bars.close[$0] / bars.close[$0 - 1]) }
    }

    func correlation(_ a: [Double], _ b: [Double]) -> Double {
        let n = Double(a.count)
        let ma = a.reduce(0, +) / n, mb = b.reduce(0, +) / n
        var sab = 0.0, saa = 0.0, sbb = 0.0
        for (x, y) in zip(a, b) {
            sab += (x - ma) * (y - mb)
            saa += (x - ma) * (x - ma)
            sbb += (y - mb) * (y - mb)
        }
        return sab / (saa * sbb).squareRoot()
    }

    @Test("same seed, same data; another seed, other data; labelled as demo")
    func determinism() async throws {
        let again = DemoProvider(seed: 7, endDate: { DemoProviderTests.end })
        let other = DemoProvider(seed: 8, endDate: { DemoProviderTests.end })
        #expect(try await bars("AAPL") == bars("AAPL", .raw, again))
        #expect(try await bars("AAPL").close != bars("AAPL", .raw, other).close)
        let answer = try await demo.dailyBars(BarQuery(symbols: ["SPY"], range: everything, adjustment: .split))
        #expect(answer.warnings.contains { $0.message.contains("demo data") && $0.kind == .demoData })
        #expect(demo.name == "demo")
    }

    @Test("a value on a date does not depend on the range asked for")
    func rangeIndependence() async throws {
        let whole = try await bars("MSFT", .all)
        let narrow = try await demo.dailyBars(BarQuery(symbols: ["MSFT"], range: date("2011-03-01")...date("2011-04-30"), adjustment: .all))
        #expect(try #require(narrow.bars["MSFT"]) == whole.slice(date("2011-03-01")...date("2011-04-30")))
    }

    @Test("bars fall on the market calendar's trading days, with sane OHLC and volume")
    func calendarAndOHLC() async throws {
        let days = MarketCalendar.nyse.tradingDays(in: everything)
        for symbol in symbols + ["SPY"] {
            let series = try await bars(symbol)
            #expect(series.dates == days, "\(symbol)")
            for i in 0..<series.count {
                let ok = series.low[i] > 0 && series.low[i] <= min(series.open[i], series.close[i])
                    && series.high[i] >= max(series.open[i], series.close[i]) && series.volume[i] > 0
                if !ok {
                    Issue.record("\(symbol) \(series.dates[i]): O \(series.open[i]) H \(series.high[i]) L \(series.low[i]) C \(series.close[i])")
                    break
                }
            }
        }
    }

    @Test("SPY moves like a market: realistic volatility, clustered")
    func spyIsAMarket() async throws {
        let returns = logReturns(try await bars("SPY", .all))
        let mean = returns.reduce(0, +) / Double(returns.count)
        let volatility = (returns.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(returns.count)).squareRoot()
        #expect(volatility > 0.006 && volatility < 0.025, "daily volatility \(volatility)")
        // Volatility clustering: big moves follow big moves.
        let squares = returns.map { $0 * $0 }
        #expect(correlation(Array(squares.dropLast()), Array(squares.dropFirst())) > 0.05)
    }

    @Test("other tickers load on the market factor")
    func correlatedWithSPY() async throws {
        let spy = logReturns(try await bars("SPY", .all))
        var correlations: [Double] = []
        for symbol in symbols {
            correlations.append(correlation(logReturns(try await bars(symbol, .all)), spy))
        }
        #expect(correlations.allSatisfy { $0 > 0.2 }, "\(correlations)")
        #expect(correlations.reduce(0, +) / Double(correlations.count) > 0.4)
        // ...but they are not copies of it.
        #expect(correlations.allSatisfy { $0 < 0.97 })
    }

    @Test("splits are reported like a vendor's, and split adjustment removes the jump")
    func splits() async throws {
        var splitCount = 0
        for symbol in symbols {
            let raw = try await bars(symbol)
            let adjusted = try await bars(symbol, .split)
            for i in 1..<raw.count where raw.splitRatio[i] != 1 {
                splitCount += 1
                let rawJump = raw.close[i] / raw.close[i - 1]
                let adjustedJump = adjusted.close[i] / adjusted.close[i - 1]
                #expect(abs(log(rawJump * raw.splitRatio[i])) < 0.25, "\(symbol) \(raw.dates[i]) raw move net of the split")
                #expect(abs(log(rawJump)) > 0.5, "\(symbol) \(raw.dates[i]) raw prices jump")
                #expect(abs(log(adjustedJump)) < 0.25, "\(symbol) \(raw.dates[i]) adjusted prices do not")
            }
        }
        #expect(splitCount >= 2)
    }

    @Test("dividends are reported for some tickers and 'all' adjustment folds them in")
    func dividends() async throws {
        let spyRaw = try await bars("SPY")
        let exDates = spyRaw.dividend.indices.filter { spyRaw.dividend[$0] > 0 }
        #expect(exDates.count > 80)  // quarterly over 24 years
        let split = try await bars("SPY", .split)
        let all = try await bars("SPY", .all)
        #expect(all.close[0] < split.close[0])
        #expect(all.close.last == split.close.last)
        var payers = 0
        for symbol in symbols where try await bars(symbol).dividend.contains(where: { $0 > 0 }) { payers += 1 }
        #expect(payers > 0 && payers < symbols.count)
    }

    @Test("nothing before the demo epoch; the end date bounds the data")
    func bounds() async throws {
        let answer = try await demo.dailyBars(BarQuery(symbols: ["SPY"], range: date("1995-01-01")...date("2030-01-01"), adjustment: .raw))
        let spy = try #require(answer.bars["SPY"])
        #expect(spy.firstDate == demo.dataEpoch)
        #expect(spy.lastDate == DemoProviderTests.end)
        #expect(answer.warnings.map(\.message).contains("SPY: no data before 2000-01-03; using 2000-01-03...2024-06-28"))
    }
}
