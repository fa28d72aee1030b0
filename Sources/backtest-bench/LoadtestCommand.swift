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
            run. --hostile N adds N hostile connections cycling through issue 12's hostile inputs (huge request_id, \
            heavy backtests cancelled, timed out or abandoned, re-chunked slow writes, control characters, forged-log \
            and 3 MB names, a 4 MB ticker, deep nesting, an undecodable batch variant, slowloris, a bad preface, 20 connections stalling in 4 MiB frames); their \
            outcomes are reported apart from the users' figures, unexpected ones flagged, and with --spawn the \
            server's CPU is measured after every client stops. Exits with status 1 when a target is missed (errors \
            surfaced, results lost or mixed, p99 of single backtests over 50 ms without chaos, server RSS over \
            500 MB, server CPU not idle within 1 s after the clients stop).
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
    @Option(help: "Hostile connections beside the users (0: none).")
    var hostile = 0
    @Option(help: "Positions of the hostile connections' heavy backtest.")
    var hostilePositions = 40_000
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
        guard hostile >= 0, hostilePositions > 0 else { throw ValidationError("--hostile must be 0 or more and --hostile-positions positive") }
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
            printError("loadtest: \(users) users for \(duration) s, mix \(options.mix)\(chaos ? ", chaos" : "")\(hostile > 0 ? ", \(hostile) hostile connections" : "")")
            let loadTest = LoadTest(options: options, host: host, port: port, requests: requests)
            var chaosRun: Task<[String], Never>?
            if chaos, let stack {
                var monkey = Chaos()
                monkey.interval = .seconds(chaosInterval)
                let deadline = ContinuousClock.now + options.duration
                chaosRun = Task { await monkey.run(stack: stack, control: control, until: deadline) }
            }
            var hostileOptions: HostileClients.Options?
            if hostile > 0 {
                hostileOptions = HostileClients.Options()
                hostileOptions?.connections = hostile
                hostileOptions?.heavyPositions = hostilePositions
            }
            // Whether work outlives hostile calls: the spawned server's CPU once every client stopped.
            var serverCPU: (@Sendable () -> Double?)?
            if hostile > 0, let pid = server?.pid {
                serverCPU = { ProcessCPU.seconds(pid: pid) }
            }
            let loadRun = try await loadTest.run(hostile: hostileOptions, serverCPU: serverCPU)
            let (tally, elapsed) = (loadRun.tally, loadRun.elapsed)
            let events = await chaosRun?.value ?? []
            await control.close()
            let report = LoadTestReport(
                tally: tally, elapsed: elapsed, options: options, chaos: chaos, machine: machineDescription(),
                command: "backtest-bench " + CommandLine.arguments.dropFirst().joined(separator: " "),
                peakRSS: server?.peakResidentBytes, chaosEvents: events,
                hostile: loadRun.hostile.map { HostileReport($0, connections: hostile) }, idle: loadRun.idle)
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
