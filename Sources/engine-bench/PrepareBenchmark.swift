import BacktestCore
import BacktestEngine
import BacktestModel
import BacktestProtocol
import Foundation
import NIOCore

/// `engine-bench prepare [--positions N] [--runs N]`: the CPU work a RunBacktest does before any
/// data is fetched, on one strategy of N positions (default 40,000; the 10 benchmark tickers in
/// turn, equal weights, an SMA(20) > SMA(50) entry each, one year): decoding the CallRequest
/// (protobuf-c unpack, wire checks and conversion to the Swift model), validation under the
/// call's paths and the analysis (tickers and unique indicator series). Prints the median of
/// each phase over `--runs` repetitions (after one warm-up), in milliseconds.
enum PrepareBenchmark {
    static func main(_ arguments: [String]) -> Int32 {
        var count = 40_000
        var runs = 20
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--positions": count = iterator.next().flatMap(Int.init) ?? count
            case "--runs": runs = iterator.next().flatMap(Int.init) ?? runs
            default:
                FileHandle.standardError.write(Data("usage: engine-bench prepare [--positions N] [--runs N]\n".utf8))
                return 2
            }
        }
        let tickers = ["AAPL", "MSFT", "XOM", "JPM", "JNJ", "PG", "KO", "INTC", "CSCO", "WMT"]
        let strategy = Strategy(
            name: "\(count) positions",
            positions: (0..<count).map { p in
                Position(
                    ticker: tickers[p % tickers.count], weight: 1 / Double(count),
                    entry: .compare(lhs: indicator("sma:20"), op: .greater, rhs: indicator("sma:50")))
            },
            fill: .nextOpen, commissionBps: 1, slippageBps: 1, rebalance: .monthly)
        let settings = BacktestSettings(start: TradingDate(iso: "2019-01-02")!, end: TradingDate(iso: "2019-12-31")!)
        var bytes = ByteBuffer()
        CallRequest(method: .runBacktest(BacktestRequest(strategy: strategy, settings: settings))).encode(into: &bytes)
        let limits = DecodeLimits(memoryBudget: 1 << 30)
        let clock = ContinuousClock()
        var decodeMs: [Double] = [], validateMs: [Double] = [], analyseMs: [Double] = [], totalMs: [Double] = []
        do {
            for run in 0...runs {
                let started = clock.now
                let request = try CallRequest.decode(bytes, limits: limits)
                guard case .runBacktest(let decoded) = try request.method.get() else {
                    throw BacktestError(.internal, "decoded something other than a RunBacktest")
                }
                let decodedAt = clock.now
                try Validation.validate(decoded.settings, path: "run_backtest.settings")
                try Validation.validate(decoded.strategy, path: "run_backtest.strategy")
                try Validation.validateCashSizing(decoded.strategy, settings: decoded.settings, path: "run_backtest.strategy")
                let validatedAt = clock.now
                let analysis = try StrategyAnalysis(
                    strategies: [decoded.strategy], settings: decoded.settings, fieldPrefix: { _ in "run_backtest.strategy" })
                let analysedAt = clock.now
                guard analysis.indicatorKeys.count == 2 * tickers.count else {
                    throw BacktestError(.internal, "expected \(2 * tickers.count) indicator series, got \(analysis.indicatorKeys.count)")
                }
                if run == 0 { continue }
                decodeMs.append((decodedAt - started).milliseconds)
                validateMs.append((validatedAt - decodedAt).milliseconds)
                analyseMs.append((analysedAt - validatedAt).milliseconds)
                totalMs.append((analysedAt - started).milliseconds)
            }
        } catch {
            FileHandle.standardError.write(Data("engine-bench prepare: \(error)\n".utf8))
            return 1
        }
        print("positions  request bytes   decode ms   validate ms   analyse ms   total ms   (medians of \(runs) runs)")
        print(String(
            format: "%9d %14d %11.1f %13.1f %12.1f %10.1f", count, bytes.readableBytes, median(decodeMs), median(validateMs),
            median(analyseMs), median(totalMs)))
        return 0
    }
}
