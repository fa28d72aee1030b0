import ArgumentParser
import BacktestBench
import BacktestCommandLine
import Foundation

/// `backtest-bench bench`: the plan's success-metrics table, measured on this machine against
/// backtestd children it starts itself (see `BenchStack`), next to the reference path.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the success-metrics table end to end over TCP (fake Alpaca at 150 ms, own redis-server, backtestd children).",
        discussion: """
            Starts a fake Alpaca server in this process, a redis-server (or uses REDIS_URL), our backtestd \
            (v2 engine, cache) and a reference backtestd (USE_NEW_ENGINE=false, BACKTESTD_CACHE=off, one symbol \
            per Alpaca request, --max-parallel 1), then measures both. Build in release mode first: \
            swift build -c release --product backtest-bench --product backtestd --product engine-bench
            """)

    @Flag(help: "Print the report as JSON.")
    var json = false
    @Option(help: "Runs per warm median.")
    var warmRuns = 30
    @Option(help: "Purge-then-run repetitions per cold median.")
    var coldRuns = 5
    @Option(help: "Runs per reference-path median.")
    var referenceRuns = 3
    @Flag(help: "Skip the years x tickers grid.")
    var noGrid = false
    @Flag(help: "Skip engine-bench (engine-only throughput).")
    var noEngine = false
    @Option(help: "engine-bench runs of the single-backtest figure.")
    var engineRuns = 100
    @OptionGroup var stackOptions: StackOptions

    func run() async throws {
        let stack = try await stackOptions.start()
        var report = BenchReport(machine: machineDescription(), command: "backtest-bench " + CommandLine.arguments.dropFirst().joined(separator: " "),
                                 date: ISO8601DateFormatter().string(from: Date()), alpacaLatencyMs: stackOptions.alpacaLatencyMs)
        do {
            let server = try await stack.launchServer()
            let reference = try await stack.launchReferenceServer()
            var options = BenchRunner.Options()
            options.warmRuns = max(1, warmRuns)
            options.coldRuns = max(1, coldRuns)
            options.referenceRuns = max(1, referenceRuns)
            options.grid = !noGrid
            let runner = BenchRunner(options: options, server: Probe(client: server.makeClient()),
                                     reference: Probe(client: reference.makeClient()), stack: stack)
            try await runner.run(into: &report) { printError("bench: \($0)") }
            await runner.server.client.close()
            await runner.reference.client.close()
            if let rss = server.peakResidentBytes { report.checks.append(String(format: "server peak RSS %.1f MB", Double(rss) / 1_048_576)) }
        } catch {
            await stack.shutdown()
            throw reportFailure(error)
        }
        await stack.shutdown()
        if !noEngine {
            printError("bench: engine-bench (engine only)")
            do {
                report.engine = try await EngineFigures.measure(binary: stackOptions.binary.deletingLastPathComponent().appendingPathComponent("engine-bench"), runs: engineRuns)
            } catch {
                report.engineNote = "\(error)"
            }
        }
        print(json ? try report.json() : report.rendered())
        if !report.failedChecks.isEmpty { throw ExitCode(1) }
    }
}
