import ArgumentParser

/// Measurements of backtestd end to end, apart from the `backtest` client so that the user's
/// executable links no fake Alpaca, redis-server orchestration or test support.
@main
struct BacktestBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backtest-bench",
        abstract: "Benchmarks and load tests for backtestd.",
        subcommands: [Bench.self, Loadtest.self, SweepTargetsCommand.self])
}
