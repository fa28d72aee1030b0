import BacktestClient
import BacktestCore
import BacktestReporting
import Foundation

/// `backtest-bench loadtest`: N simulated users, each on its own connection, sending a mix of single
/// backtests and batches with random think time in between, for a fixed duration.
///
/// Every answer is compared exactly with the baseline of its request (`LoadRequests`), so a
/// result lost, truncated or delivered to the wrong user is counted, not just slow. A user
/// retries a call that fails with UNAVAILABLE (the server's word for "transient: try again",
/// e.g. Alpaca rate-limited beyond the server's own retries, or a dropped connection) up to
/// `maxAttempts` times with a short backoff; such retries are reported apart from errors
/// surfaced to the user, which are any other failure or a retry budget exhausted.
/// Latency is measured per request from the first attempt to the checked answer (retries
/// included) and kept in HDR histograms of microseconds.
package struct LoadTest: Sendable {
    package struct Options: Sendable {
        package var users = 50
        package var duration: Duration = .seconds(60)
        package var mix = LoadMix.default
        package var thinkMs: ClosedRange<Int> = 50...200
        package var maxAttempts = 8
        package init() {}
    }

    package let options: Options
    package let host: String
    package let port: Int
    package let requests: LoadRequests

    package init(options: Options, host: String, port: Int, requests: LoadRequests) {
        self.options = options
        self.host = host
        self.port = port
        self.requests = requests
    }

    /// Runs the users; returns the merged tally and the wall time of the run.
    package func run() async throws -> (LoadTally, Duration) {
        for kind in RequestKind.allCases where (options.mix.weights[kind] ?? 0) > 0 && requests.entries(of: kind).isEmpty {
            throw BenchError("the mix asks for \(kind.rawValue) requests but the request set has none")
        }
        let started = ContinuousClock.now
        let deadline = started + options.duration
        let tally = await withTaskGroup(of: LoadTally.self) { group in
            for user in 0..<options.users {
                group.addTask { await self.simulateUser(user, until: deadline) }
            }
            var total = LoadTally()
            for await tally in group { total.merge(tally) }
            return total
        }
        return (tally, ContinuousClock.now - started)
    }

    /// Runs the users and, with `hostile`, that many hostile connections beside them until the
    /// same deadline (`HostileClients`), then, when `serverCPU` reads the server's CPU seconds
    /// (a spawned server), measures whether the server goes idle once every client has stopped.
    package func run(hostile: HostileClients.Options?, serverCPU: (@Sendable () -> Double?)?) async throws -> LoadRun {
        let deadline = ContinuousClock.now + options.duration
        let hostileRun = hostile.map { hostileOptions in
            Task { await HostileClients(options: hostileOptions, host: host, port: port).run(until: deadline) }
        }
        let users: (LoadTally, Duration)
        do {
            users = try await run()
        } catch {
            hostileRun?.cancel()
            _ = await hostileRun?.value
            throw error
        }
        let hostileTally = await hostileRun?.value
        let idle: IdleCheck? = if let serverCPU { await IdleCheck.measure(cpuSeconds: serverCPU) } else { nil }
        return LoadRun(tally: users.0, elapsed: users.1, hostile: hostileTally, idle: idle)
    }

    private func simulateUser(_ user: Int, until deadline: ContinuousClock.Instant) async -> LoadTally {
        var tally = LoadTally()
        var random = SystemRandomNumberGenerator()
        let client = BacktestClient(host: host, port: port)
        let probe = Probe(client: client)
        // Spread the first requests over one think time, so 50 users do not start in lockstep.
        try? await Task.sleep(for: .milliseconds(Int.random(in: 0...options.thinkMs.upperBound, using: &random)))
        while ContinuousClock.now < deadline {
            let kind = options.mix.randomKind(using: &random)
            let candidates = requests.entries(of: kind)
            guard let entry = candidates.randomElement(using: &random) else { break }
            let started = ContinuousClock.now
            var attempt = 0
            while true {
                attempt += 1
                do {
                    let (_, outcome) = try await probe.outcome(of: entry.request)
                    tally.record(kind, ContinuousClock.now - started)
                    if let difference = entry.expected.mismatch(in: outcome) {
                        tally.mismatches.append("user \(user), \(entry.label): \(difference)")
                    }
                    break
                } catch let error as BacktestError where error.code == .unavailable && attempt < options.maxAttempts {
                    tally.retried[LoadTally.name(of: error), default: 0] += 1
                    try? await Task.sleep(for: .milliseconds(50 * attempt))
                } catch {
                    tally.errors[LoadTally.name(of: error), default: 0] += 1
                    break
                }
            }
            try? await Task.sleep(for: .milliseconds(Int.random(in: options.thinkMs, using: &random)))
        }
        await client.close()
        return tally
    }
}

/// What `LoadTest.run(hostile:serverCPU:)` measured: the normal users' tally, the hostile
/// connections' (nil without them), and the server's CPU after every client stopped (nil when
/// the server was not spawned).
package struct LoadRun: Sendable {
    package var tally: LoadTally
    package var elapsed: Duration
    package var hostile: HostileTally?
    package var idle: IdleCheck?
}

/// The hostile connections' part of the report, apart from the normal users' figures.
package struct HostileReport: Sendable, Codable {
    package struct Row: Sendable, Codable {
        package var name: String
        package var calls: Int
        /// Outcome ("INVALID_ARGUMENT", "GOAWAY DEADLINE_EXCEEDED", "closed", ...) -> count.
        package var outcomes: [String: Int]
        /// What a correct server answers (`HostileCase.expected`).
        package var expected: [String]
    }

    package var connections: Int
    package var calls: Int
    package var cases: [Row]
    /// "case: outcome xN" for every outcome not expected (cases cut short by the end excluded).
    package var unexpected: [String]

    package init(_ tally: HostileTally, connections: Int) {
        self.connections = connections
        calls = tally.calls
        cases = HostileCase.allCases.map { kind in
            let outcomes = tally.outcomes[kind] ?? [:]
            return Row(name: kind.rawValue, calls: outcomes.values.reduce(0, +), outcomes: outcomes, expected: kind.expected.sorted())
        }
        unexpected = tally.unexpected
    }
}

/// The load test's outcome against its targets.
package struct LoadTestReport: Sendable, Codable {
    package var machine: String
    package var command: String
    package var users: Int
    package var durationSeconds: Double
    package var mix: String
    package var thinkMs: String
    package var chaos: Bool
    package var requests: Int
    package var requestsPerSecond: Double
    package var latency: [String: LatencySummary]
    package var errorsByStatus: [String: Int]
    package var retriedByStatus: [String: Int]
    package var mismatches: Int
    package var mismatchSamples: [String]
    package var serverPeakRSSBytes: Int?
    package var chaosEvents: [String] = []
    /// The hostile connections (`--hostile N`); nil without them.
    package var hostile: HostileReport?
    /// The server's CPU after every client stopped; nil when the server was not spawned.
    package var cpuAfterClientsStop: IdleCheck?
    package var targets: [Target] = []

    package struct Target: Sendable, Codable {
        package var name: String
        package var measured: String
        package var pass: Bool
    }

    package init(tally: LoadTally, elapsed: Duration, options: LoadTest.Options, chaos: Bool, machine: String, command: String,
                peakRSS: Int?, chaosEvents: [String], hostile: HostileReport? = nil, idle: IdleCheck? = nil) {
        self.machine = machine
        self.command = command
        users = options.users
        durationSeconds = elapsed.milliseconds / 1000
        mix = options.mix.description
        thinkMs = "\(options.thinkMs.lowerBound)..\(options.thinkMs.upperBound)"
        self.chaos = chaos
        requests = tally.completed
        requestsPerSecond = Double(tally.completed) / max(durationSeconds, 0.001)
        var latency: [String: LatencySummary] = ["all": LatencySummary(tally.allLatencies)]
        for (kind, histogram) in tally.latency { latency[kind.rawValue] = LatencySummary(histogram) }
        self.latency = latency
        errorsByStatus = tally.errors
        retriedByStatus = tally.retried
        mismatches = tally.mismatches.count
        mismatchSamples = Array(tally.mismatches.prefix(10))
        serverPeakRSSBytes = peakRSS
        self.chaosEvents = chaosEvents
        self.hostile = hostile
        cpuAfterClientsStop = idle

        let surfaced = tally.errors.values.reduce(0, +)
        targets.append(Target(name: "zero errors surfaced to users", measured: "\(surfaced)", pass: surfaced == 0))
        targets.append(Target(name: "no result lost or mixed between users", measured: "\(mismatches) mismatches", pass: mismatches == 0))
        if !chaos, let single = latency[RequestKind.single.rawValue] {
            targets.append(Target(name: "p99 of single backtests <= 50 ms", measured: Format.milliseconds(single.p99Ms), pass: single.p99Ms <= 50))
        }
        if let peakRSS {
            targets.append(Target(name: "server peak RSS <= 500 MB", measured: String(format: "%.0f MB", Double(peakRSS) / 1_048_576),
                                  pass: peakRSS <= 500 * 1_048_576))
        }
        if let idle {
            targets.append(Target(
                name: "server CPU back to idle within 1 s after the clients stop",
                measured: String(format: "%.0f ms CPU in the 2nd second", idle.secondSecondMs), pass: idle.idleWithinOneSecond))
        }
    }

    package var passed: Bool { targets.allSatisfy(\.pass) }

    package func rendered() -> String {
        var out = ["backtest-bench loadtest on \(machine)", "command: \(command)",
                   String(format: "%d users, %.1f s, mix %@, think %@ ms%@: %d requests, %.1f requests/s",
                          users, durationSeconds, mix, thinkMs, chaos ? ", CHAOS" : "", requests, requestsPerSecond), ""]
        if hostile != nil { out.append("normal users (the hostile connections are counted apart, below):") }
        var table = TextTable(headers: ["Requests", "Count", "p50", "p90", "p99", "max", "mean"])
        for key in ["single", "batch", "all"] {
            guard let summary = latency[key] else { continue }
            table.append([key, "\(summary.count)", Format.milliseconds(summary.p50Ms), Format.milliseconds(summary.p90Ms), Format.milliseconds(summary.p99Ms),
                          Format.milliseconds(summary.maxMs), Format.milliseconds(summary.meanMs)])
        }
        out.append(table.rendered())
        out.append("")
        func counts(_ dictionary: [String: Int]) -> String {
            dictionary.isEmpty ? "none" : dictionary.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        }
        out.append("errors surfaced to users: \(counts(errorsByStatus))")
        out.append("retried by users (UNAVAILABLE, then answered or counted above): \(counts(retriedByStatus))")
        out.append("results checked against the baseline: \(requests), mismatches \(mismatches)")
        out += mismatchSamples.map { "  \($0)" }
        out.append("server peak RSS (VmHWM): " + (serverPeakRSSBytes.map { String(format: "%.1f MB", Double($0) / 1_048_576) } ?? "n/a (server not spawned)"))
        if !chaosEvents.isEmpty {
            out.append("chaos events:")
            out += chaosEvents.map { "  \($0)" }
        }
        if let hostile {
            out.append("")
            out.append("hostile clients: \(hostile.connections) connections, \(hostile.calls) cases played")
            var cases = TextTable(headers: ["Case", "Calls", "Outcomes", "Expected"])
            for row in hostile.cases {
                cases.append([row.name, "\(row.calls)", counts(row.outcomes), row.expected.joined(separator: " or ")])
            }
            out.append(cases.rendered())
            out.append("unexpected hostile outcomes" + (hostile.unexpected.isEmpty ? ": none" : " (not yet handled as issue 12 asks):"))
            out += hostile.unexpected.map { "  \($0)" }
        }
        if let idle = cpuAfterClientsStop {
            out.append(String(format: "server CPU after the clients stopped: %.0f ms in the first second, %.0f ms in the second",
                              idle.firstSecondMs, idle.secondSecondMs))
        } else if hostile != nil {
            out.append("server CPU after the clients stopped: n/a (server not spawned)")
        }
        out.append("")
        var targetTable = TextTable(headers: ["Target", "Measured", "Pass"])
        for target in targets { targetTable.append([target.name, target.measured, target.pass ? "yes" : "NO"]) }
        out.append(targetTable.rendered())
        return out.joined(separator: "\n")
    }

    package func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}
