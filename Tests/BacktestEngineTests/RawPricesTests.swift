import BacktestCore
import BacktestModel
import BacktestTestSupport
import Foundation
import Testing

@testable import BacktestEngine

/// Issue 14 item 1: `raw` is prices as traded, like a brokerage account: held shares follow
/// splits on the ex-date (reverse splits too), cash dividends are credited on the ex-date.
@Suite("Raw prices through splits and dividends", .offCooperativePool)
struct RawPricesTests {
    struct AccountCase: Decodable {
        let ticker: String
        let start: String
        let end: String
        let dates: [String]
        let raw_with_dividends: [Double]
        let raw_without_dividends: [Double]
    }

    static let hold = Strategy(
        name: "hold", positions: [Position(ticker: "T", weight: 1, entry: compare(series("close"), .greater, .number(0)))],
        fill: .close)

    static func strategy(_ ticker: String) -> Strategy {
        var strategy = hold
        strategy.positions[0].ticker = ticker
        return strategy
    }

    /// A snapshot of raw bars (`adjustment` applied), dividends dropped when `dividends` is false.
    static func snapshot(_ tickers: [String], _ adjustment: PriceAdjustment, dividends: Bool = true) throws -> MarketSnapshot {
        var bars: [String: DailyBars] = [:]
        for ticker in tickers {
            var raw = try SharedData.rawBars(ticker)
            if !dividends { raw.dividend = Array(repeating: 0, count: raw.count) }
            bars[ticker] = raw.adjusted(adjustment)
        }
        return MarketSnapshot(bars: bars, source: "files")
    }

    static func run(_ ticker: String, _ start: String, _ end: String, _ adjustment: PriceAdjustment, dividends: Bool = true, engine: any BacktestRunner = VectorEngine()) throws -> BacktestResult {
        let settings = BacktestSettings(start: TestData.date(start), end: TestData.date(end), adjustment: adjustment)
        return try engine.run(strategy(ticker), settings: settings, snapshot: try snapshot([ticker, "SPY"], adjustment, dividends: dividends), indicators: IndicatorStore())
    }

    static func near(_ a: [Double], _ b: [Double], _ tolerance: Double = 1e-9) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= tolerance * abs($1) }
    }

    @Test("buy and hold on raw prices equals a brokerage account's day loop (fixtures from raw_account.py)")
    func accountDayLoop() throws {
        let cases = try JSONDecoder().decode([AccountCase].self, from: try TestData.fixture("edges/raw_account.json"))
        for c in cases {
            let raw = try Self.run(c.ticker, c.start, c.end, .raw)
            #expect(raw.dates.map(\.description) == c.dates, "\(c.ticker) \(c.start)")
            #expect(Self.near(raw.equity, c.raw_with_dividends), "\(c.ticker) \(c.start): \(raw.equity.last!) vs \(c.raw_with_dividends.last!)")
            let noDividends = try Self.run(c.ticker, c.start, c.end, .raw, dividends: false)
            #expect(Self.near(noDividends.equity, c.raw_without_dividends), "\(c.ticker) \(c.start) without dividends")
            // The reference engine and the sweep's summary agree.
            let reference = try Self.run(c.ticker, c.start, c.end, .raw, engine: ReferenceEngine())
            DifferentialTests.expectEqual(raw, reference, "\(c.ticker) raw")
            let settings = BacktestSettings(start: TestData.date(c.start), end: TestData.date(c.end), adjustment: .raw)
            let market = try PreparedMarket(settings: settings, snapshot: try Self.snapshot([c.ticker, "SPY"], .raw))
            let summary = try SweepRunner.summaries([Self.strategy(c.ticker)], market: market, indicators: IndicatorStore(), parallelism: 1)[0].get()
            #expect(SweepTests.bits(summary.metrics) == SweepTests.bits(raw.metrics))
            #expect(summary.finalEquity == raw.equity.last!)
        }
    }

    struct MetricsCase: Decodable {
        let ticker: String
        let start: String
        let metrics: [String: Double]
    }

    @Test("metrics under raw equal empyrical's on the account curves (fixtures from raw_account_metrics.py)")
    func empyricalMetrics() throws {
        let cases = try JSONDecoder().decode([AccountCase].self, from: try TestData.fixture("edges/raw_account.json"))
        let expected = try JSONDecoder().decode([MetricsCase].self, from: try TestData.fixture("edges/raw_account_metrics.json"))
        for (c, e) in zip(cases, expected) {
            let m = try Self.run(c.ticker, c.start, c.end, .raw).metrics
            let actual: [String: Double] = [
                "total_return": m.totalReturn, "cagr": m.cagr, "volatility": m.volatility, "sharpe": m.sharpe,
                "sortino": m.sortino, "max_drawdown": m.maxDrawdown, "calmar": m.calmar, "alpha": m.alpha, "beta": m.beta,
            ]
            for (name, value) in e.metrics {
                #expect(TestData.close(actual[name]!, value, tolerance: 1e-9), "\(c.ticker) \(c.start) \(name): \(actual[name]!) vs \(value)")
            }
        }
    }

    @Test("AAPL 2014 through the 7:1 split: raw follows the split (no fall to 16,940), ends at split's 139,689 plus dividends")
    func aapl2014() throws {
        let raw = try Self.run("AAPL", "2014-01-02", "2014-12-31", .raw)
        let split = try Self.run("AAPL", "2014-01-02", "2014-12-31", .split)
        let rawNoDividends = try Self.run("AAPL", "2014-01-02", "2014-12-31", .raw, dividends: false)
        let june9 = try #require(raw.dates.firstIndex(of: TestData.date("2014-06-09")))
        #expect(raw.equity[june9] > 100_000)  // was 16,940
        #expect(abs(split.equity.last! - 139_688.82) < 0.01)
        #expect(Self.near(rawNoDividends.equity, split.equity))
        #expect(raw.equity.last! > split.equity.last!)  // four dividends credited
        // Orders: one buy at the raw close of 2014-01-02 (553.13), no order at the split.
        #expect(raw.orders.count == 1 && abs(raw.orders[0].price - 553.13) < 1e-9)
    }

    @Test("stop levels follow a split under raw prices: a 20 % stop through AAPL's 7:1 split equals split-adjusted prices, on both engines")
    func stopsThroughSplit() throws {
        var strategy = Self.strategy("AAPL")
        strategy.positions[0].exits = PriceExits(stopLoss: 0.2, trailingStop: 0.25)
        for engine in [VectorEngine(), ReferenceEngine()] as [any BacktestRunner] {
            func run(_ adjustment: PriceAdjustment) throws -> BacktestResult {
                let settings = BacktestSettings(start: TestData.date("2014-01-02"), end: TestData.date("2014-12-31"), adjustment: adjustment)
                return try engine.run(strategy, settings: settings, snapshot: try Self.snapshot(["AAPL", "SPY"], adjustment, dividends: false), indicators: IndicatorStore())
            }
            let raw = try run(.raw)
            let split = try run(.split)
            #expect(raw.orders.count == 1, "\(engine.name): no stop at the split")
            #expect(Self.near(raw.equity, split.equity), "\(engine.name)")
        }
    }

    @Test("invariants on every shared ticker: raw without dividends = split; raw with dividends = split + dividends as cash; = all until the first dividend")
    func everyTicker() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: SharedData.dailyDirectory.path)
            .filter { $0.hasSuffix(".csv") && $0 != "SPY.csv" }.map { String($0.dropLast(4)) }.sorted()
        let spy = try SharedData.rawBars("SPY")
        for ticker in names {
            let rawBars = try SharedData.rawBars(ticker)
            // Ten years or the listed range, whichever is shorter, ending at SPY's last day.
            let first = max(rawBars.firstDate!, TestData.date("2010-08-02"))
            let settings = { (adjustment: PriceAdjustment) in
                BacktestSettings(start: first, end: spy.lastDate!, adjustment: adjustment)
            }
            func run(_ adjustment: PriceAdjustment, dividends: Bool = true) throws -> BacktestResult {
                try VectorEngine().run(
                    Self.strategy(ticker), settings: settings(adjustment),
                    snapshot: try Self.snapshot([ticker, "SPY"], adjustment, dividends: dividends), indicators: IndicatorStore())
            }
            let split = try run(.split)
            let rawNoDividends = try run(.raw, dividends: false)
            #expect(Self.near(rawNoDividends.equity, split.equity), "\(ticker): raw without dividends vs split")
            let raw = try run(.raw)
            let all = try run(.all)
            // Raw with dividends = the same shares plus each dividend in cash: shares (split-
            // adjusted terms) x the dividend per split-adjusted share, summed to each day.
            let splitBars = rawBars.adjusted(.split)
            let shares = 100_000 / splitBars.close[splitBars.index(of: split.dates[0])!]
            var cash = 0.0
            var expected: [Double] = []
            for (t, date) in split.dates.enumerated() {
                if t > 0, let i = splitBars.index(of: date) { cash += shares * splitBars.dividend[i] }
                expected.append(split.equity[t] + cash)
            }
            #expect(Self.near(raw.equity, expected), "\(ticker): raw with dividends vs split + dividends as cash")
            // `all` reinvests dividends where the account keeps them as cash: the two agree up to
            // the first ex-date in the window, and differ after it by the reinvestment's return.
            let firstDividend = split.dates.indices.first { t in
                t > 0 && splitBars.index(of: split.dates[t]).map { splitBars.dividend[$0] != 0 } == true
            } ?? split.dates.count
            #expect(Self.near(Array(raw.equity[..<firstDividend]), Array(all.equity[..<firstDividend])), "\(ticker): raw vs all before the first dividend")
        }
    }

    @Test("a reverse split multiplies held shares by its ratio")
    func reverseSplit() throws {
        let dates = try EdgeCaseTests.dates(6)
        var bars = DailyBars(symbol: "R")
        let closes: [Double] = [1, 1.1, 12, 12.5, 13, 13]
        for (t, date) in dates.enumerated() {
            bars.append(date: date, open: closes[t], high: closes[t], low: closes[t], close: closes[t], volume: 1000,
                        dividend: t == 4 ? 0.5 : 0, splitRatio: t == 2 ? 0.1 : 1)
        }
        let snapshot = MarketSnapshot(bars: ["R": bars, "BENCH": EdgeCaseTests.benchmark(dates)], source: "test")
        var settings = EdgeCaseTests.settings(dates)
        settings.adjustment = .raw
        let result = try EdgeCaseTests.runAll(Self.strategy("R"), settings, snapshot)
        // Day loop: 100,000 shares at 1; x 0.1 on day 2 = 10,000 shares; +0.5 x 10,000 cash on day 4.
        let expected: [Double] = [100_000, 110_000, 120_000, 125_000, 130_000 + 5_000, 130_000 + 5_000]
        #expect(Self.near(result.equity, expected, 1e-12), "\(result.equity)")
    }
}
