import BacktestCore
import BacktestEngine
import BacktestModel
import Foundation
import Synchronization

/// `engine-bench positions [--counts 5000,10000,...] [--years N] [--cancel-after-ms N]`: one backtest with many
/// positions (the 10 benchmark tickers in turn, equal weights, an SMA-crossover entry and an RSI
/// exit, filled at the next open with monthly rebalancing), timed whole: validation, analysis,
/// indicators, calendar and simulation, as a RunBacktest's CPU work. The time per position should
/// stay flat as the count grows (the simulation is linear in positions).
///
/// With `--cancel-after-ms N` each backtest's `CancellationFlag` is set by another thread N ms
/// after it starts, and the figure is how long it ran on after that (the stop latency; CANCELLED
/// expected).
enum PositionsBenchmark {
    static func main(_ arguments: [String]) -> Int32 {
        var counts = [5_000, 10_000, 20_000, 40_000, 100_000]
        var years = 1
        var cancelAfterMs: Int?
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--counts": counts = iterator.next().map { $0.split(separator: ",").compactMap { Int($0) } } ?? counts
            case "--years": years = iterator.next().flatMap(Int.init) ?? years
            case "--cancel-after-ms": cancelAfterMs = iterator.next().flatMap(Int.init)
            default:
                FileHandle.standardError.write(Data("usage: engine-bench positions [--counts N,N,...] [--years N] [--cancel-after-ms N]\n".utf8))
                return 2
            }
        }
        do {
            let end = TradingDate(iso: "2019-12-31")!
            let settings = BacktestSettings(start: TradingDate(iso: "\(2020 - years)-01-02")!, end: end)
            let tickers = ["AAPL", "MSFT", "XOM", "JPM", "JNJ", "PG", "KO", "INTC", "CSCO", "WMT"]
            let snapshot = try loadSnapshot(tickers + ["SPY"], end: end)
            if cancelAfterMs == nil { print("positions   total ms   us/position   orders   final equity   (validation+analysis ms, simulation ms)") }
            for count in counts {
                let strategy = Strategy(
                    name: "\(count) positions",
                    positions: (0..<count).map { p in
                        Position(
                            ticker: tickers[p % tickers.count], weight: 1 / Double(count),
                            entry: .compare(lhs: indicator("sma:20"), op: .greater, rhs: indicator("sma:50")),
                            exit: .compare(lhs: indicator("rsi:14"), op: .greater, rhs: .number(70)))
                    },
                    fill: .nextOpen, commissionBps: 1, slippageBps: 1, rebalance: .monthly)
                if let cancelAfterMs {
                    let flag = CancellationFlag()
                    let cancelledAt = Mutex<ContinuousClock.Instant?>(nil)
                    Thread.detachNewThread {
                        Thread.sleep(forTimeInterval: Double(cancelAfterMs) / 1000)
                        cancelledAt.withLock { $0 = ContinuousClock.now }
                        flag.cancel()
                    }
                    var store = IndicatorStore()
                    let outcome = Result { () throws(BacktestError) in
                        try Backtester().run(strategy, settings: settings, snapshot: snapshot, indicators: &store, cancellation: flag)
                    }
                    let ended = ContinuousClock.now
                    guard let at = cancelledAt.withLock({ $0 }) else {
                        print(String(format: "%9d positions: finished before the cancel at %d ms", count, cancelAfterMs))
                        continue
                    }
                    let code = (try? outcome.get()) == nil ? "CANCELLED" : "finished"
                    print(String(format: "%9d positions: ", count) + code + String(format: " %.2f ms after the cancel at %d ms", (ended - at).milliseconds, cancelAfterMs))
                    continue
                }
                let started = ContinuousClock.now
                var store = IndicatorStore()
                let result = try Backtester().run(strategy, settings: settings, snapshot: snapshot, indicators: &store)
                let ms = (ContinuousClock.now - started).milliseconds
                print(String(
                    format: "%9d %10.1f %13.2f %8d %14.2f   (%.1f, %.1f)", count, ms, ms * 1000 / Double(count), result.orders.count,
                    result.finalEquity, result.stats.analysisMs, result.stats.simulationMs))
            }
            return 0
        } catch {
            FileHandle.standardError.write(Data("engine-bench positions: \(error)\n".utf8))
            return 1
        }
    }
}
