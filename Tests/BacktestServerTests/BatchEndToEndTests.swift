import BacktestClient
import BacktestCore
import BacktestModel
import Testing

/// Issue #6's "done when", over real TCP with the real engine on the shared daily files.
@Suite("Batches end to end", .timeLimit(.minutes(2)))
struct BatchEndToEndTests {
    @Test func eightVariantsStreamEightUpdatesThenOneFinalEqualToRunningEachAlone() async throws {
        let fixture = try BatchFixture()
        let variants = BatchFixture.smaVariants(8)
        try await withServer(service: fixture.served) { _, port in
            let client = BacktestClient(port: port)
            let outcome = try await BatchOutcome.collect(client.runBatch(variants, settings: BatchFixture.sixYears))

            #expect(outcome.updates.count == 9)
            #expect(outcome.partials.count == 8)
            #expect(outcome.partials.map(\.completed) == Array(1...8), "one update per finished variant, counted in order")
            #expect(outcome.partials.allSatisfy { $0.results.count == 1 && $0.total == 8 })
            let final = try #require(outcome.final)
            #expect(final.completed == 8)
            #expect(final.results.isEmpty, "results went out with the partial updates")
            #expect(final.stats?.dataSource == "files")
            #expect(Set(outcome.updates.map(\.batchID)).count == 1)

            let batched = outcome.results
            #expect(batched.keys.sorted() == Array(0..<8))
            for (index, variant) in variants.enumerated() {
                let alone = try await client.runBacktest(variant, settings: BatchFixture.sixYears)
                expectSameSimulation(batched[index], alone, "variant \(index) in the batch vs alone")
            }
            await client.close()
        }
    }

    @Test func theWholeBatchFetchesItsDataOnce() async throws {
        let fixture = try BatchFixture()
        let tickers = ["AAPL", "MSFT", "JPM", "KO"]
        try await withServer(service: fixture.served) { _, port in
            let client = BacktestClient(port: port)
            let outcome = try await BatchOutcome.collect(
                client.runBatch(BatchFixture.smaVariants(8, tickers: tickers), settings: BatchFixture.sixYears))
            #expect(outcome.final != nil)
            let queries = await fixture.source.queries
            #expect(queries.count == 1, "one query for all 8 variants")
            #expect(Set(queries.first?.symbols ?? []) == Set(tickers + ["SPY"]))
            #expect(outcome.final?.stats?.indicatorSeries == 8 * tickers.count, "each variant's SMA per ticker, once")
            await client.close()
        }
    }

    @Test(arguments: [(server: 3, requested: 0, bound: 3), (server: 3, requested: 2, bound: 2), (server: 2, requested: 8, bound: 2)])
    func parallelismNeverExceedsTheBound(server: Int, requested: Int, bound: Int) async throws {
        let fixture = try BatchFixture(maxParallel: server)
        try await withServer(service: fixture.served) { _, port in
            let client = BacktestClient(port: port)
            let outcome = try await BatchOutcome.collect(
                client.runBatch(BatchFixture.smaVariants(8), settings: BatchFixture.sixYears, maxParallel: requested))
            let final = try #require(outcome.final)
            let job = try await fixture.service.jobs.job(id: final.batchID)
            // The service's own count of variants started and not yet collected: exact.
            #expect(await job.peakParallelism == bound)
            // What the engine saw at once (the cooperative pool may run fewer, never more).
            #expect(fixture.probe.peak <= bound)
            #expect(fixture.probe.started.count == 8)
            await client.close()
        }
    }

    @Test func cancellingMidBatchStopsTheRemainingVariants() async throws {
        let fixture = try BatchFixture(holdAfter: 1)
        try await withServer(service: fixture.served) { _, port in
            let client = BacktestClient(port: port)
            var received: [ProgressUpdate] = []
            for try await update in client.runBatch(BatchFixture.smaVariants(8), settings: BatchFixture.sixYears, maxParallel: 1) {
                received.append(update)
                // The server has finished v1 and holds its update: leaving the loop cancels the batch.
                try await within("the batch reaching the gate") { () async -> Void in await fixture.gate.arrival() }
                break
            }
            let job = try await fixture.service.jobs.job(id: try #require(received.first?.batchID))
            try await poll { await job.state != .partial }
            #expect(await job.state == .cancelled)
            #expect(received.count == 1)
            #expect(fixture.probe.started == ["v0", "v1"], "no variant after the cancel started")
            let status = try await client.batchStatus(id: job.id)
            #expect(status.state == .cancelled)
            #expect(status.error?.code == .cancelled)
            await client.close()
        }
    }
}
