import ArgumentParser
import BacktestBench
import BacktestCommandLine
import BacktestClient
import Foundation

/// `backtest-bench loadtest`: many simulated users against one server, every answer checked.
struct Loadtest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load-test a server: N users on their own connections, think time, a single/batch mix, every result checked.",
        discussion: """
            Against --host/--port, or with --spawn against a backtestd child backed by a fake Alpaca (150 ms) and \
            its own redis-server. --chaos (needs --spawn) restarts Redis and rate-limits the fake Alpaca during the \
            run. Exits with status 1 when a target is missed (errors surfaced, results lost or mixed, p99 of single \
            backtests over 50 ms without chaos, server RSS over 500 MB).
            """)

    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Start the server (and fake Alpaca, redis-server) instead of using --host/--port.")
    var spawn = false
    @Option(help: "Simulated users, one connection each.")
    var users = 50
    @Option(help: "Duration of the load, seconds.")
    var duration = 60
    @Option(help: "Request mix, KIND:WEIGHT,... with kinds single and batch.")
    var mix = "single:80,batch:20"
    @Option(help: "Think time between a user's requests, ms: MIN..MAX or a fixed number.")
    var thinkMs = "50..200"
    @Flag(help: "Restart Redis and make the fake Alpaca answer 429 during the run (needs --spawn).")
    var chaos = false
    @Option(help: "Seconds between chaos rounds.")
    var chaosInterval = 10
    @Option(help: "Batch parallelism of the spawned server.")
    var maxParallel = 2
    @OptionGroup var stackOptions: StackOptions
    @Flag(help: "Print the report as JSON.")
    var json = false

    func run() async throws {
        var options = LoadTest.Options()
        do {
            options.mix = try LoadMix(parsing: mix)
            options.thinkMs = try parseThinkTime(thinkMs)
        } catch {
            throw ValidationError("\(error)")
        }
        guard users > 0, duration > 0, chaosInterval > 0 else { throw ValidationError("--users, --duration and --chaos-interval must be positive") }
        guard !chaos || spawn else { throw ValidationError("--chaos needs --spawn: it controls the fake Alpaca and redis-server it starts") }
        options.users = users
        options.duration = .seconds(duration)

        var stack: BenchStack?
        var server: ServerProcess?
        let host: String
        let port: Int
        if spawn {
            let started = try await stackOptions.start(useRedisURL: !chaos)
            stack = started
            do {
                server = try await started.launchServer(maxParallel: maxParallel)
            } catch {
                await started.shutdown()
                throw reportFailure(error)
            }
            host = "127.0.0.1"
            port = server!.port
        } else {
            let client = try connection.makeClient()
            host = client.host
            port = client.port
        }

        do {
            printError("loadtest: baseline (each request twice) on \(host):\(port)")
            let control = BacktestClient(host: host, port: port)
            let requests = try await LoadRequests.baseline(Probe(client: control))
            printError("loadtest: \(users) users for \(duration) s, mix \(options.mix)\(chaos ? ", chaos" : "")")
            let loadTest = LoadTest(options: options, host: host, port: port, requests: requests)
            var chaosRun: Task<[String], Never>?
            if chaos, let stack {
                var monkey = Chaos()
                monkey.interval = .seconds(chaosInterval)
                let deadline = ContinuousClock.now + options.duration
                chaosRun = Task { await monkey.run(stack: stack, control: control, until: deadline) }
            }
            let (tally, elapsed) = try await loadTest.run()
            let events = await chaosRun?.value ?? []
            await control.close()
            let report = LoadTestReport(
                tally: tally, elapsed: elapsed, options: options, chaos: chaos, machine: machineDescription(),
                command: "backtest-bench " + CommandLine.arguments.dropFirst().joined(separator: " "),
                peakRSS: server?.peakResidentBytes, chaosEvents: events)
            await stack?.shutdown()
            print(json ? try report.json() : report.rendered())
            if !report.passed { throw ExitCode(1) }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            await stack?.shutdown()
            throw reportFailure(error)
        }
    }
}
