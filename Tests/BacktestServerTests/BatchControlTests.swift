import BacktestClient
import BacktestCore
import BacktestModel
import BacktestServer
import BacktestTestSupport
import Synchronization
import Testing

/// Issue #17: batch control from the first moment. The batch id reaches the client before the
/// data fetch (a first update with nothing completed), so a connection lost during a slow cold
/// fetch can be re-attached; CancelBatch stops a batch from any connection.
@Suite("Batch control", .timeLimit(.minutes(2)))
struct BatchControlTests {
    @Test func aConnectionDroppedDuringAHeldColdFetchReattachesAndCompletes() async throws {
        let fixture = try BatchFixture(holdFetch: true)
        let variants = BatchFixture.smaVariants(4)
        try await withServer(service: fixture.served) { _, port in
            let proxy = try await CuttableProxy.start(targetPort: port)
            let clock = ManualClock()
            let announced = Announced()
            let client = BacktestClient(port: proxy.port)
            var iterator = client.runBatch(variants, settings: BatchFixture.sixYears, maxParallel: 1,
                                           reattach: ReattachPolicy(clock: clock), onBatchID: announced.set)
                .makeAsyncIterator()
            try await within("the batch's data fetch", limit: .seconds(30)) { () async -> Void in await fixture.fetchGate.arrival() }
            // The id was sent before the fetch started; the client has it without any result.
            try await poll { announced.id != nil }
            let id = try #require(announced.id)

            proxy.cutAll()
            // Re-attached at once: the first poll finds the batch still fetching, then waits 1 s.
            #expect(try await within("a poll's sleep") { try await clock.nextSleep() } == .seconds(1))
            let job = try await fixture.service.jobs.job(id: id)
            #expect(await job.state == .partial, "the batch runs on after the disconnect")
            #expect(await job.completed == 0)
            await fixture.fetchGate.open()
            try await poll(timeout: .seconds(60)) { await job.state != .partial }  // four 6-year simulations on a loaded machine
            clock.advance(by: .seconds(1))
            var outcome = BatchOutcome()
            while let update = try await iterator.next() { outcome.updates.append(update) }

            let uninterrupted = try await BatchOutcome.collect(
                BacktestClient(port: port).runBatch(variants, settings: BatchFixture.sixYears, maxParallel: 1))
            #expect(outcome.results.keys.sorted() == Array(0..<4), "every variant exactly once")
            for index in 0..<4 {
                expectSameSimulation(outcome.results[index], uninterrupted.results[index], "variant \(index)")
            }
            let final = try #require(outcome.final)
            #expect(final.batchID == id)
            #expect(final.completed == 4)
            #expect(outcome.updates.allSatisfy { $0.completed > 0 }, "the announcing update is not delivered")
            await client.close()
            await proxy.stop()
        }
    }

    @Test func cancelBatchFromASecondConnectionStopsTheWorkAndBothSeeCancelled() async throws {
        let fixture = try BatchFixture(holdAfter: 1)
        try await withServer(service: fixture.served) { _, port in
            let client = BacktestClient(port: port)
            var iterator = client.runBatch(BatchFixture.smaVariants(6), settings: BatchFixture.sixYears, maxParallel: 1,
                                           reattach: .disabled).makeAsyncIterator()
            let first = try #require(try await iterator.next())
            #expect(first.results.map(\.index) == [0])
            // v1 finished; its update waits at the gate, and v2 starts only after it went out.
            try await within("the batch reaching the gate") { () async -> Void in await fixture.gate.arrival() }

            let other = BacktestClient(port: port)
            let answer = try await other.cancelBatch(id: first.batchID)
            #expect(answer.state == .cancelled)
            #expect(answer.completed == 2)
            #expect(answer.total == 6)
            #expect(answer.results.isEmpty)
            #expect(answer.error?.code == .cancelled)

            let error = try await #require(throws: BacktestError.self) {
                while try await iterator.next() != nil {}
            }
            #expect(error.code == .cancelled)
            #expect(error.message.contains("after 2 of 6 variants"), "\(error.message)")

            let status = try await other.batchStatus(id: first.batchID)
            #expect(status.state == .cancelled)
            #expect(status.completed == 2)
            #expect(status.results.map(\.index).sorted() == [0, 1], "what finished stays readable")
            #expect(fixture.probe.started == ["v0", "v1"], "no variant started after the cancel")
            // Cancelling again changes nothing.
            let again = try await other.cancelBatch(id: first.batchID)
            #expect(again.state == .cancelled)
            #expect(again.completed == 2)
            await client.close()
            await other.close()
        }
    }

    @Test func cancelBatchDuringTheColdFetchStopsItBeforeAnyVariant() async throws {
        let fixture = try BatchFixture(holdFetch: true)
        try await withServer(service: fixture.served) { _, port in
            let announced = Announced()
            let client = BacktestClient(port: port)
            let stream = client.runBatch(BatchFixture.smaVariants(3), settings: BatchFixture.sixYears,
                                         reattach: .disabled, onBatchID: announced.set)
            let following = Task { try await BatchOutcome.collect(stream) }
            try await within("the batch's data fetch", limit: .seconds(30)) { () async -> Void in await fixture.fetchGate.arrival() }
            try await poll { announced.id != nil }
            let id = try #require(announced.id)

            let answer = try await BacktestClient(port: port).cancelBatch(id: id)
            #expect(answer.state == .cancelled)
            #expect(answer.completed == 0)
            let error = try await #require(throws: BacktestError.self) { try await following.value }
            #expect(error.code == .cancelled)
            #expect(fixture.probe.started.isEmpty)
            await client.close()
        }
    }

    /// SUMMARY batches (SweepBatchRun) honour the same control: the id before the fetch, and
    /// CancelBatch stops them before any variant.
    @Test func cancelBatchStopsASummaryBatchDuringTheColdFetch() async throws {
        let fixture = try BatchFixture(holdFetch: true)
        try await withServer(service: fixture.served) { _, port in
            let announced = Announced()
            let client = BacktestClient(port: port)
            let stream = client.runBatch(BatchFixture.smaVariants(3), settings: BatchFixture.sixYears,
                                         reattach: .disabled, detail: .summary, onBatchID: announced.set)
            let following = Task { try await BatchOutcome.collect(stream) }
            try await within("the batch's data fetch", limit: .seconds(30)) { () async -> Void in await fixture.fetchGate.arrival() }
            try await poll { announced.id != nil }
            let id = try #require(announced.id)
            let job = try await fixture.service.jobs.job(id: id)
            #expect(await job.completed == 0)

            let answer = try await BacktestClient(port: port).cancelBatch(id: id)
            #expect(answer.state == .cancelled)
            #expect(answer.completed == 0)
            #expect(answer.total == 3)
            await fixture.fetchGate.open()
            let error = try await #require(throws: BacktestError.self) { try await following.value }
            #expect(error.code == .cancelled)
            #expect(await job.state == .cancelled)
            #expect(await job.completed == 0, "no variant ran after the cancel")
            await client.close()
        }
    }

    @Test func aFinishedBatchIsLeftAsItIsAndAnUnknownIdIsNotFound() async throws {
        let fixture = try BatchFixture()
        try await withServer(service: fixture.served) { _, port in
            let client = BacktestClient(port: port)
            let outcome = try await BatchOutcome.collect(
                client.runBatch(BatchFixture.smaVariants(2), settings: BatchFixture.sixYears))
            let final = try #require(outcome.final)
            let answer = try await client.cancelBatch(id: final.batchID)
            #expect(answer.state == .final)
            #expect(answer.completed == 2)
            let error = try await #require(throws: BacktestError.self) {
                try await client.cancelBatch(id: "0123456789abcdef0123456789abcdef")
            }
            #expect(error.code == .notFound)
            #expect(error.field == "cancel_batch.batch_id")
            await client.close()
        }
    }

    /// A client following a re-attached batch has no call left to CANCEL: when its consumer stops,
    /// it sends CancelBatch.
    @Test func stoppingAReattachedBatchSendsCancelBatch() async throws {
        let fixture = try BatchFixture(holdFetch: true)
        try await withServer(service: fixture.served) { _, port in
            let proxy = try await CuttableProxy.start(targetPort: port)
            let clock = ManualClock()
            let announced = Announced()
            let client = BacktestClient(port: proxy.port)
            let stream = client.runBatch(BatchFixture.smaVariants(3), settings: BatchFixture.sixYears,
                                         reattach: ReattachPolicy(clock: clock), onBatchID: announced.set)
            let following = Task { try await BatchOutcome.collect(stream) }
            try await within("the batch's data fetch", limit: .seconds(30)) { () async -> Void in await fixture.fetchGate.arrival() }
            try await poll { announced.id != nil }
            let job = try await fixture.service.jobs.job(id: try #require(announced.id))
            proxy.cutAll()
            _ = try await within("a poll's sleep") { try await clock.nextSleep() }
            following.cancel()
            try await poll { await job.state != .partial }
            #expect(await job.state == .cancelled)
            #expect(await job.cancelReason != nil, "stopped by CancelBatch, not abandoned")
            #expect(fixture.probe.started.isEmpty)
            await client.close()
            await proxy.stop()
        }
    }
}

/// The batch id a client was told, from its callback.
final class Announced: Sendable {
    private let value = Mutex<String?>(nil)
    var id: String? { value.withLock { $0 } }
    var set: @Sendable (String) -> Void { { id in self.value.withLock { $0 = id } } }
}
