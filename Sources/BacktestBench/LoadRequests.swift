
/// The fixed requests of a load test and their expected answers, measured by a baseline run
/// before the load starts. Users draw from these, so every answer can be checked exactly.
package struct LoadRequests: Sendable {
    package struct Entry: Sendable {
        package var label: String
        package var request: BenchRequest
        package var expected: ExpectedOutcome
    }

    package private(set) var entries: [Entry]

    package init(entries: [Entry]) {
        self.entries = entries
    }

    /// Four single backtests and two batches of 8 over different periods and portfolios, so a
    /// result delivered to the wrong request never matches by accident.
    package static let standard: [(String, BenchRequest)] = [
        ("single 1y x10 sma50/200", .single(Workload.strategy(tickers: 10), Workload.settings(years: 1))),
        ("single 3y x5 sma20/100", .single(Workload.strategy(tickers: 5, fast: 20, slow: 100), Workload.settings(years: 3))),
        ("single 5y x1 sma10/150", .single(Workload.strategy(tickers: 1, fast: 10, slow: 150), Workload.settings(years: 5))),
        ("single 3y x10 sma30/250", .single(Workload.strategy(tickers: 10, fast: 30, slow: 250), Workload.settings(years: 3))),
        ("batch 8 1y x10", .batch(Workload.variants(8, tickers: 10), Workload.settings(years: 1))),
        ("batch 8 3y x5", .batch(Workload.variants(8, tickers: 5), Workload.settings(years: 3))),
    ]

    /// Runs every request twice (the first fills the cache) and keeps the second answer; the
    /// two must agree, or the server is not deterministic and no check could mean anything.
    package static func baseline(_ probe: Probe, requests: [(String, BenchRequest)] = standard) async throws -> LoadRequests {
        var entries: [Entry] = []
        for (label, request) in requests {
            let (_, first) = try await probe.outcome(of: request)
            let (_, second) = try await probe.outcome(of: request)
            if let difference = first.mismatch(in: second) {
                throw BenchError("baseline of '\(label)' differs between two runs: \(difference)")
            }
            entries.append(Entry(label: label, request: request, expected: second))
        }
        return LoadRequests(entries: entries)
    }

    package func entries(of kind: RequestKind) -> [Entry] {
        entries.filter { $0.request.kind == kind }
    }
}
