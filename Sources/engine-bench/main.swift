// engine-bench: the engine alone, data in memory, on ../shared market data.
//
//     swift run -c release engine-bench [--json] [--runs N] [--variants N] [--parallelism N]
//     swift run -c release engine-bench sweep ...   (the vectorbt peer comparison's side: SweepBenchmark.swift)
//     swift run -c release engine-bench positions [--counts 5000,10000] (one backtest of many positions)
//     swift run -c release engine-bench prepare [--positions N] (decode + validation + analysis of one request)
//
// 1. One 10-year backtest of 10 tickers with 3 indicators each (median of many runs), with the
//    indicator store precomputed (warm) and including the indicator computation (cold).
// 2. A sweep of 10,000 single-ticker SMA-crossover variants over 10 years on 2 threads: unique
//    series computed once, calendar prepared once, variants in parallel (wall time).
import BacktestCore
import BacktestEngine
import BacktestModel
import BacktestTestSupport
import Dispatch
import Foundation

struct Options {
    var json = false
    var runs = 200
    var variants = 10_000
    var parallelism = 2

    init(_ arguments: [String]) {
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--json": json = true
            case "--runs": runs = iterator.next().flatMap(Int.init) ?? runs
            case "--variants": variants = iterator.next().flatMap(Int.init) ?? variants
            case "--parallelism": parallelism = iterator.next().flatMap(Int.init) ?? parallelism
            default:
                FileHandle.standardError.write(Data("usage: engine-bench [--json] [--runs N] [--variants N] [--parallelism N]\n".utf8))
                exit(2)
            }
        }
    }
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
}

func loadSnapshot(_ tickers: [String], end: TradingDate) throws -> MarketSnapshot {
    var bars: [String: DailyBars] = [:]
    for ticker in tickers {
        bars[ticker] = try SharedData.rawBars(ticker).adjusted(.split).slice(IndicatorCalculator.dataEpoch...end)
    }
    return MarketSnapshot(bars: bars, source: "files")
}

func indicator(_ key: String, _ ticker: String? = nil) -> Operand {
    .series(SeriesRef(ticker: ticker, source: .indicator(try! IndicatorSpec(parsing: key))))
}

if CommandLine.arguments.dropFirst().first == "sweep" {
    exit(SweepBenchmark.main(Array(CommandLine.arguments.dropFirst(2))))
}
if CommandLine.arguments.dropFirst().first == "prepare" {
    exit(PrepareBenchmark.main(Array(CommandLine.arguments.dropFirst(2))))
}
if CommandLine.arguments.dropFirst().first == "positions" {
    exit(PositionsBenchmark.main(Array(CommandLine.arguments.dropFirst(2))))
}

let options = Options(Array(CommandLine.arguments.dropFirst()))
let clock = ContinuousClock()
let settings = BacktestSettings(start: TradingDate(iso: "2010-01-04")!, end: TradingDate(iso: "2019-12-31")!)
let tickers = ["AAPL", "MSFT", "XOM", "JPM", "JNJ", "PG", "KO", "INTC", "CSCO", "WMT"]
let snapshot = try loadSnapshot(tickers + ["SPY"], end: settings.end)

// MARK: 1. Ten tickers, three indicators each

let portfolio = Strategy(
    name: "10 tickers x 3 indicators",
    positions: tickers.map { ticker in
        Position(ticker: ticker, weight: 0.1, entry: .all([
            .compare(lhs: indicator("sma:50"), op: .greater, rhs: indicator("sma:200")),
            .compare(lhs: indicator("rsi:14"), op: .less, rhs: .number(75)),
        ]), exit: .compare(lhs: .series(SeriesRef(source: .field(.close))), op: .crossesBelow, rhs: indicator("sma:50")))
    },
    fill: .nextOpen, commissionBps: 2, slippageBps: 1, rebalance: .monthly)
let analysis = try StrategyAnalysis(strategy: portfolio, settings: settings)
var prepare: [Double] = []
for _ in 0..<options.runs {
    let started = clock.now
    _ = try PreparedMarket(settings: settings, snapshot: snapshot)
    prepare.append((clock.now - started).milliseconds)
}
let store = try IndicatorStore.compute(analysis.indicatorKeys, snapshot: snapshot)
let engine = VectorEngine()
var warm: [Double] = []
var cold: [Double] = []
var bars = 0
var finalEquity = 0.0
for _ in 0..<options.runs {
    let started = clock.now
    let result = try engine.run(portfolio, settings: settings, snapshot: snapshot, indicators: store)
    warm.append((clock.now - started).milliseconds)
    bars = result.stats.barsProcessed
    finalEquity = result.finalEquity
}
for _ in 0..<max(options.runs / 10, 5) {
    let started = clock.now
    let fresh = try IndicatorStore.compute(analysis.indicatorKeys, snapshot: snapshot)
    _ = try engine.run(portfolio, settings: settings, snapshot: snapshot, indicators: fresh)
    cold.append((clock.now - started).milliseconds)
}

// MARK: 2. The SMA-crossover sweep

let fastPeriods = Array(5..<105)
let slowPeriods = Array(110..<310)
var variants: [Strategy] = []
outer: for slow in slowPeriods {
    for fast in fastPeriods {
        if variants.count == options.variants { break outer }
        variants.append(Strategy(
            name: "sma \(fast)/\(slow)",
            positions: [Position(ticker: "AAPL", weight: 1, entry: .compare(
                lhs: indicator("sma:\(fast)"), op: .greater, rhs: indicator("sma:\(slow)")))],
            fill: .nextOpen, commissionBps: 1))
    }
}
let sweepStarted = clock.now
let sweepAnalysis = try StrategyAnalysis(strategies: variants, settings: settings)
let sweepStore = try IndicatorStore.compute(sweepAnalysis.indicatorKeys, snapshot: snapshot)
let indicatorsDone = clock.now
let market = try PreparedMarket(settings: settings, snapshot: snapshot)

final class Totals: @unchecked Sendable {
    let lock = NSLock()
    var completed = 0
    var failed = 0
    var bars = 0
    var best = -Double.infinity
    func add(_ outcome: Result<BacktestResult, BacktestError>) {
        lock.lock()
        defer { lock.unlock() }
        switch outcome {
        case .success(let result):
            completed += 1
            bars += result.stats.barsProcessed
            best = max(best, result.metrics.sharpe)
        case .failure: failed += 1
        }
    }
}
let totals = Totals()
BatchRunner.run(variants, market: market, indicators: sweepStore, parallelism: options.parallelism) { _, outcome in
    totals.add(outcome)
}
let sweepMs = (clock.now - sweepStarted).milliseconds
let indicatorMs = (indicatorsDone - sweepStarted).milliseconds

// MARK: Report

let figures: [(String, String, Double)] = [
    ("single_warm_median_ms", "10 tickers x 3 indicators, 10 years, store precomputed: median ms", median(warm)),
    ("single_warm_p90_ms", "  same, p90 ms", warm.sorted()[Int(Double(warm.count - 1) * 0.9)]),
    ("single_prepare_median_ms", "  of which preparing the calendar (PreparedMarket): median ms", median(prepare)),
    ("single_cold_median_ms", "  same, including computing its \(analysis.indicatorKeys.count) indicator series: median ms", median(cold)),
    ("single_bars_per_second", "  bars simulated per second (warm)", Double(bars) / (median(warm) / 1000)),
    ("sweep_wall_ms", "\(totals.completed) SMA-crossover variants, 10 years, \(options.parallelism) threads: wall ms", sweepMs),
    ("sweep_indicator_ms", "  of which computing the \(sweepAnalysis.indicatorKeys.count) unique series: ms", indicatorMs),
    ("sweep_variants_per_second", "  variants per second", Double(totals.completed) / (sweepMs / 1000)),
    ("sweep_bars_per_second", "  bars simulated per second", Double(totals.bars) / (sweepMs / 1000)),
]
if options.json {
    var object: [String: Any] = Dictionary(uniqueKeysWithValues: figures.map { ($0.0, $0.2) })
    object["runs"] = options.runs
    object["variants"] = totals.completed
    object["failed_variants"] = totals.failed
    object["parallelism"] = options.parallelism
    let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    print(String(decoding: data, as: UTF8.self))
} else {
    print("engine-bench (\(ProcessInfo.processInfo.activeProcessorCount) cores, \(options.runs) runs)")
    for (_, label, value) in figures {
        let text = value >= 1000 ? String(format: "%.0f", value) : String(format: "%.3f", value)
        print(label.padding(toLength: 84, withPad: " ", startingAt: 0) + " " + text)
    }
    print("check: portfolio final equity \(String(format: "%.2f", finalEquity)), best sweep Sharpe \(String(format: "%.3f", totals.best)), failed variants \(totals.failed)")
}
