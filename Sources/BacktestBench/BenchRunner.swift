import BacktestClient
import BacktestCore
import BacktestReporting
import Foundation

/// Measures the plan's success-metrics table against a running stack (`BenchStack`): our server
/// (v2 engine, Redis cache, multi-symbol requests) and the reference path on the same machine.
///
/// Warm figures are medians (p50) after one unmeasured run that fills the cache; cold figures
/// are medians of runs each preceded by PurgeCache, which empties Redis and the server's
/// in-memory layer, so the server has to fetch from the fake Alpaca (150 ms a request).
package struct BenchRunner: Sendable {
    package struct Options: Sendable {
        package var warmRuns = 30
        package var coldRuns = 5
        package var referenceRuns = 3
        /// Also measure the years x tickers grid.
        package var grid = true
        package init() {}
    }

    package let options: Options
    package let server: Probe
    package let reference: Probe
    package let stack: BenchStack

    package init(options: Options, server: Probe, reference: Probe, stack: BenchStack) {
        self.options = options
        self.server = server
        self.reference = reference
        self.stack = stack
    }

    package func run(into report: inout BenchReport, progress: (String) -> Void) async throws {
        let oneYear = Workload.settings(years: 1)
        let fiveYears = Workload.settings(years: 5)
        let ten = Workload.strategy(tickers: 10)

        // 1. Single backtest, 1 year, 10 tickers: warm, then cold.
        progress("single backtest, 1 year, 10 tickers: warm")
        _ = try await server.single(ten, oneYear)
        var warmRun = try await server.single(ten, oneYear)
        let warm = try await Probe.median(options.warmRuns) {
            warmRun = try await server.single(ten, oneYear)
            return warmRun.elapsed
        }
        progress("single backtest, 1 year, 10 tickers: cold")
        var coldRun = warmRun
        var coldTimes: [Double] = []
        var alpacaRequestsCold: [Int] = []
        for _ in 0..<options.coldRuns {
            _ = try await server.client.purgeCache(timeout: .seconds(30))
            let before = stack.alpaca.requestCount
            coldRun = try await server.single(ten, oneYear)
            alpacaRequestsCold.append(stack.alpaca.requestCount - before)
            coldTimes.append(coldRun.elapsed.milliseconds)
        }
        let cold = Probe.median(coldTimes)
        // The run right after the last cold one is the "second run" of the hit-rate row.
        let before = stack.alpaca.requestCount
        let secondRun = try await server.single(ten, oneYear)
        let alpacaRequestsWarm = stack.alpaca.requestCount - before

        progress("reference path: single backtest, 1 year, 10 tickers")
        var referenceRun = coldRun
        let referenceSingle = try await Probe.median(options.referenceRuns) {
            referenceRun = try await reference.single(ten, oneYear)
            return referenceRun.elapsed
        }

        // 2. Batches.
        progress("batch of 8 variants, 1 year, 10 tickers")
        let eight = Workload.variants(8, tickers: 10)
        _ = try await server.batch(eight, oneYear)
        let batch8 = try await Probe.median(options.warmRuns) { try await server.batch(eight, oneYear).elapsed }
        let referenceBatch8 = try await Probe.median(max(1, options.referenceRuns - 1)) { try await reference.batch(eight, oneYear).elapsed }
        progress("batch of 50 variants, 5 years, 10 tickers")
        let fifty = Workload.variants(50, tickers: 10)
        let firstFifty = try await server.batch(fifty, fiveYears)
        let batch50 = try await Probe.median(max(5, options.warmRuns / 3)) { try await server.batch(fifty, fiveYears).elapsed }
        let referenceFifty = try await reference.batch(fifty, fiveYears)

        // The rows.
        func speedup(_ ours: Double, _ theirs: Double) -> String { Format.ratio(theirs / ours) }
        report.rows.append(.init(metric: "Single backtest, 1 year, 10 tickers, warm cache, end to end over TCP (p50)",
                                 oldSystem: "30 s", planTarget: "3-5 s", ourTarget: "<= 5 ms", measured: Format.milliseconds(warm),
                                 referencePath: Format.milliseconds(referenceSingle), speedup: speedup(warm, referenceSingle), pass: warm <= 5))
        report.rows.append(.init(metric: "Same, cold cache (median)", oldSystem: "30 s", planTarget: "3-5 s", ourTarget: "<= 250 ms",
                                 measured: Format.milliseconds(cold), referencePath: Format.milliseconds(referenceSingle),
                                 speedup: speedup(cold, referenceSingle), pass: cold <= 250))  // issue 17: one vendor round trip (150 ms) and our own work
        report.rows.append(.init(metric: "Batch of 8 variants, warm (until Final, p50)", oldSystem: "4 min", planTarget: "~20 s",
                                 ourTarget: "<= 20 ms", measured: Format.milliseconds(batch8), referencePath: Format.milliseconds(referenceBatch8),
                                 speedup: speedup(batch8, referenceBatch8), pass: batch8 <= 20))
        report.rows.append(.init(metric: "Batch of 50 variants, 5 years, 10 tickers, warm (p50)", oldSystem: "-", planTarget: "-",
                                 ourTarget: "<= 100 ms", measured: Format.milliseconds(batch50),
                                 referencePath: Format.milliseconds(referenceFifty.elapsed.milliseconds),
                                 speedup: speedup(batch50, referenceFifty.elapsed.milliseconds), pass: batch50 <= 100))
        let hitRate = secondRun.result.stats.cacheHitRate
        report.rows.append(.init(metric: "Cache hit rate on the second run", oldSystem: "0%", planTarget: "95%+", ourTarget: "100% of T-2 data",
                                 measured: "\(Format.percent(hitRate, decimals: 1)) (\(secondRun.result.stats.cacheHits) hits, \(secondRun.result.stats.cacheMisses) misses)",
                                 referencePath: "0% (no cache)", speedup: "-", pass: hitRate == 1))
        let apiCold = coldRun.result.stats.apiCalls
        let apiWarm = secondRun.result.stats.apiCalls
        report.rows.append(.init(metric: "API calls per backtest, cold / warm", oldSystem: "500+", planTarget: "5-10",
                                 ourTarget: "pages needed (1-3) / 0", measured: "\(apiCold) / \(apiWarm)",
                                 referencePath: "\(referenceRun.result.stats.apiCalls) / \(referenceRun.result.stats.apiCalls)", speedup: "-",
                                 pass: (1...3).contains(apiCold) && apiWarm == 0))
        let capital = secondRun.result.initialCapital
        report.rows.append(.init(metric: "Starting capital", oldSystem: "$1", planTarget: "$100,000", ourTarget: "$100,000",
                                 measured: String(format: "$%.0f", capital), referencePath: String(format: "$%.0f", referenceRun.result.initialCapital),
                                 speedup: "-", pass: capital == 100_000))
        let variance = dailyReturnVariance(secondRun.result.benchmark)
        let benchmarkOK = secondRun.result.benchmarkTicker == "SPY" && secondRun.result.benchmark.count == secondRun.result.dates.count && variance > 0
        report.rows.append(.init(metric: "SPY benchmark", oldSystem: "flat", planTarget: "working", ourTarget: "working, variance checked",
                                 measured: String(format: "%@, daily-return variance %.2e", secondRun.result.benchmarkTicker, variance),
                                 referencePath: String(format: "variance %.2e", dailyReturnVariance(referenceRun.result.benchmark)),
                                 speedup: "-", pass: benchmarkOK))

        // Checks behind the cells.
        report.check(alpacaRequestsCold.allSatisfy { $0 == apiCold }, "cold runs made \(alpacaRequestsCold) requests to the fake Alpaca; the server reported \(apiCold) API calls")
        report.check(alpacaRequestsWarm == 0, "the second run made \(alpacaRequestsWarm) requests to the fake Alpaca")
        report.check(coldRun.result.initialCapital == 100_000 && abs((coldRun.result.equity.first ?? 0) - 100_000) < 100_000 * 0.05,
                     "initial capital 100000 in the result, first equity \(coldRun.result.equity.first ?? .nan)")
        report.check(ResultFingerprint(coldRun.result) == ResultFingerprint(secondRun.result), "cold and warm runs give identical results (\(ResultFingerprint(secondRun.result)))")
        let centDifference = abs(referenceRun.result.finalEquity - secondRun.result.finalEquity)
        report.check(centDifference < 0.01, String(format: "reference engine and v2 agree on final equity (difference $%.4f)", centDifference))
        report.check(firstFifty.results.count == 50 && referenceFifty.results.count == 50, "batches of 50 returned 50 results on both servers")
        report.check(referenceRun.result.stats.engine == "reference" && secondRun.result.stats.engine != "reference",
                     "engines: ours '\(secondRun.result.stats.engine)', reference path '\(referenceRun.result.stats.engine)'")

        if options.grid { try await measureGrid(into: &report, progress: progress) }
    }

    private func measureGrid(into report: inout BenchReport, progress: (String) -> Void) async throws {
        for years in [1, 3, 5] {
            for tickers in [1, 5, 10] {
                progress("grid: \(years) years, \(tickers) tickers")
                let settings = Workload.settings(years: years)
                let strategy = Workload.strategy(tickers: tickers)
                _ = try await server.single(strategy, settings)
                let warm = try await Probe.median(options.warmRuns) { try await server.single(strategy, settings).elapsed }
                var coldTimes: [Double] = []
                var apiCalls = 0
                for _ in 0..<max(1, options.coldRuns / 2) {
                    _ = try await server.client.purgeCache(timeout: .seconds(30))
                    let run = try await server.single(strategy, settings)
                    coldTimes.append(run.elapsed.milliseconds)
                    apiCalls = run.result.stats.apiCalls
                }
                let referenceTime = try await Probe.median(max(1, options.referenceRuns - 1)) { try await reference.single(strategy, settings).elapsed }
                report.grid.append(.init(years: years, tickers: tickers, warmP50Ms: warm, coldMedianMs: Probe.median(coldTimes),
                                         apiCallsCold: apiCalls, referenceMedianMs: referenceTime))
            }
        }
    }
}
