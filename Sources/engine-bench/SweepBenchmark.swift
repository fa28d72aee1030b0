// `engine-bench sweep`: one SMA-crossover grid on one ticker, timed the way the vectorbt peer
// comparison (benchmarks/vectorbt-sweep.sh) times vectorbt, with every variant's final equity
// written out so the script can check both agree.
//
//     engine-bench sweep [--ticker AAPL] [--start 2010-01-04] [--end 2019-12-31]
//         [--fast 5...104] [--slow 110...209] [--fill next_open|close] [--commission-bps 1]
//         [--slippage-bps 0] [--initial-capital 100000] [--parallelism 2] [--runs 5] [--json PATH]
//         [--mode summary|full]
//
// Variant: hold the ticker (weight 1) while sma(fast) > sma(slow), out otherwise.
//
// Timed (per run, data already in memory, split-adjusted from 1999-11-01 like the server's):
// finding the unique indicator series, computing them over the whole history, preparing the
// calendar, and running every variant until all final equities are collected: through
// SweepRunner (`--mode summary`, the default: shared signals, metrics in one pass, no curves)
// or through BatchRunner (`--mode full`: each variant's full result with its equity curve,
// orders and metrics, the measurement before SweepRunner existed). Not timed: reading and
// adjusting the CSV files, building the variant list, writing the JSON.
import BacktestCore
import BacktestEngine
import BacktestModel
import BacktestTestSupport
import Foundation

struct SweepOptions {
    var ticker = "AAPL"
    var start = TradingDate(iso: "2010-01-04")!
    var end = TradingDate(iso: "2019-12-31")!
    var fast = 5...104
    var slow = 110...209
    var fill = FillTiming.nextOpen
    var commissionBps = 1.0
    var slippageBps = 0.0
    var initialCapital = BacktestSettings.defaultInitialCapital
    var parallelism = 2
    var runs = 5
    var jsonPath: String?
    var mode = Mode.summary

    enum Mode: String {
        /// SweepRunner: a BacktestSummary per variant.
        case summary
        /// BatchRunner: a full BacktestResult per variant.
        case full
    }

    static let usage = """
        usage: engine-bench sweep [--ticker T] [--start YYYY-MM-DD] [--end YYYY-MM-DD] [--fast LO...HI]
                                  [--slow LO...HI] [--fill next_open|close] [--commission-bps X]
                                  [--slippage-bps X] [--initial-capital X] [--parallelism N] [--runs N]
                                  [--json PATH] [--mode summary|full]
        """

    struct UsageError: Error, CustomStringConvertible {
        let description: String
    }

    init(_ arguments: [String]) throws {
        var iterator = arguments.makeIterator()
        func value(_ flag: String) throws -> String {
            guard let next = iterator.next() else { throw UsageError(description: "\(flag) needs a value") }
            return next
        }
        func number<T: LosslessStringConvertible>(_ flag: String, _: T.Type) throws -> T {
            let text = try value(flag)
            guard let parsed = T(text) else { throw UsageError(description: "\(flag): not a number: \(text)") }
            return parsed
        }
        func date(_ flag: String) throws -> TradingDate {
            let text = try value(flag)
            guard let parsed = TradingDate(iso: text) else { throw UsageError(description: "\(flag): not a date: \(text)") }
            return parsed
        }
        func periods(_ flag: String) throws -> ClosedRange<Int> {
            let text = try value(flag)
            // "5...104" or "5..104", both inclusive.
            let bounds = text.split(separator: ".", omittingEmptySubsequences: true).compactMap { Int($0) }
            guard bounds.count == 2, bounds[0] >= 1, bounds[0] <= bounds[1] else {
                throw UsageError(description: "\(flag): expected LO...HI with 1 <= LO <= HI, got \(text)")
            }
            return bounds[0]...bounds[1]
        }
        while let argument = iterator.next() {
            switch argument {
            case "--ticker": ticker = try value(argument)
            case "--start": start = try date(argument)
            case "--end": end = try date(argument)
            case "--fast": fast = try periods(argument)
            case "--slow": slow = try periods(argument)
            case "--fill":
                let text = try value(argument)
                guard let parsed = FillTiming(rawValue: text) else {
                    throw UsageError(description: "--fill: expected next_open or close, got \(text)")
                }
                fill = parsed
            case "--commission-bps": commissionBps = try number(argument, Double.self)
            case "--slippage-bps": slippageBps = try number(argument, Double.self)
            case "--initial-capital": initialCapital = try number(argument, Double.self)
            case "--parallelism": parallelism = max(1, try number(argument, Int.self))
            case "--runs": runs = max(1, try number(argument, Int.self))
            case "--json": jsonPath = try value(argument)
            case "--mode":
                let text = try value(argument)
                guard let parsed = Mode(rawValue: text) else {
                    throw UsageError(description: "--mode: expected summary or full, got \(text)")
                }
                mode = parsed
            default: throw UsageError(description: "unknown argument \(argument)")
            }
        }
    }
}

enum SweepBenchmark {
    struct Variant {
        let fast: Int
        let slow: Int
    }

    /// Collects final equities by variant index from the BatchRunner's worker threads.
    final class Outcomes: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var finalEquity: [Double]
        private(set) var failures: [String] = []

        init(count: Int) { finalEquity = Array(repeating: .nan, count: count) }

        func record(_ index: Int, _ outcome: Result<Double, BacktestError>) {
            lock.lock()
            defer { lock.unlock() }
            switch outcome {
            case .success(let equity): finalEquity[index] = equity
            case .failure(let error): failures.append("variant \(index): \(error)")
            }
        }
    }

    static func main(_ arguments: [String]) -> Int32 {
        do {
            let options = try SweepOptions(arguments)
            return try run(options)
        } catch let error as SweepOptions.UsageError {
            FileHandle.standardError.write(Data("engine-bench sweep: \(error)\n\(SweepOptions.usage)\n".utf8))
            return 2
        } catch {
            FileHandle.standardError.write(Data("engine-bench sweep: \(error)\n".utf8))
            return 1
        }
    }

    static func run(_ options: SweepOptions) throws -> Int32 {
        let settings = BacktestSettings(start: options.start, end: options.end, initialCapital: options.initialCapital)
        var bars: [String: DailyBars] = [:]
        for symbol in Set([options.ticker, settings.benchmark]) {
            bars[symbol] = try SharedData.rawBars(symbol).adjusted(.split).slice(IndicatorCalculator.dataEpoch...settings.end)
        }
        let snapshot = MarketSnapshot(bars: bars, source: "files")
        let grid = options.fast.flatMap { fast in options.slow.map { Variant(fast: fast, slow: $0) } }
        let variants = grid.map { variant in
            Strategy(
                name: "sma \(variant.fast)/\(variant.slow)",
                positions: [Position(ticker: options.ticker, weight: 1, entry: .compare(
                    lhs: sma(variant.fast), op: .greater, rhs: sma(variant.slow)))],
                fill: options.fill, commissionBps: options.commissionBps, slippageBps: options.slippageBps)
        }

        let clock = ContinuousClock()
        var runMs: [Double] = []
        var indicatorMs: [Double] = []
        var outcomes = Outcomes(count: variants.count)
        var days = 0
        for _ in 0..<options.runs {
            outcomes = Outcomes(count: variants.count)
            let started = clock.now
            let analysis = try StrategyAnalysis(strategies: variants, settings: settings)
            let store = try IndicatorStore.compute(analysis.indicatorKeys, snapshot: snapshot)
            let indicatorsDone = clock.now
            let market = try PreparedMarket(settings: settings, snapshot: snapshot)
            let sink = outcomes
            switch options.mode {
            case .summary:
                SweepRunner.run(variants, market: market, indicators: store, parallelism: options.parallelism) { index, outcome in
                    sink.record(index, outcome.map(\.finalEquity))
                }
            case .full:
                BatchRunner.run(variants, market: market, indicators: store, parallelism: options.parallelism) { index, outcome in
                    sink.record(index, outcome.map(\.finalEquity))
                }
            }
            runMs.append((clock.now - started).milliseconds)
            indicatorMs.append((indicatorsDone - started).milliseconds)
            days = market.dates.count
        }
        if !outcomes.failures.isEmpty {
            FileHandle.standardError.write(Data((outcomes.failures.prefix(5).joined(separator: "\n") + "\n").utf8))
            return 1
        }

        let warm = runMs.count > 1 ? Array(runMs.dropFirst()) : runMs
        let report: [String: Any] = [
            "engine": "backtestd",
            "ticker": options.ticker, "start": options.start.description, "end": options.end.description,
            "fill": options.fill.rawValue, "commission_bps": options.commissionBps,
            "slippage_bps": options.slippageBps, "initial_capital": options.initialCapital,
            "parallelism": options.parallelism, "trading_days": days, "variant_count": variants.count,
            "runs_ms": runMs, "first_ms": runMs[0], "warm_median_ms": median(warm),
            "indicator_median_ms": median(indicatorMs),
            "mode": options.mode.rawValue,
            "timed": options.mode == .summary
                ? "unique SMA series over the whole history + calendar + every variant through SweepRunner (summary: metrics, no curves)"
                : "unique SMA series over the whole history + calendar + every variant through BatchRunner (full results: curves, orders, metrics)",
            "variants": zip(grid, outcomes.finalEquity).map { variant, equity in
                ["fast": variant.fast, "slow": variant.slow, "final_equity": equity] as [String: Any]
            },
        ]
        if let path = options.jsonPath {
            let data = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])
            try data.write(to: URL(fileURLWithPath: path))
        }
        print(
            "backtestd: \(variants.count) variants of sma(\(options.fast)) > sma(\(options.slow)) on \(options.ticker), "
                + "\(days) days, \(options.parallelism) thread(s), \(options.mode.rawValue) mode: first run "
                + String(format: "%.1f ms, warm median %.1f ms (of %d), indicators %.2f ms",
                    runMs[0], median(warm), warm.count, median(indicatorMs)))
        return 0
    }

    static func sma(_ period: Int) -> Operand {
        .series(SeriesRef(source: .indicator(IndicatorSpec(type: "sma", params: [Double(period)]))))
    }
}
