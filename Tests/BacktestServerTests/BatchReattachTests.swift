import BacktestClient
import BacktestCore
import BacktestTestSupport
import BacktestModel
import BacktestServer
import Testing

/// Issue #6's re-attach: the connection under a running batch is cut (a proxy on loopback closes
/// both sides); the client polls GetBatchStatus on a manual clock and must deliver every variant
/// exactly once and a Final equal to an uninterrupted run.
@Suite("Batch re-attach", .timeLimit(.minutes(3)))
struct BatchReattachTests {
    /// With status answers of one result each (`statusAnswerBytes` 1), the client reads the
    /// missed variants back over several answers, asking again with the indices it holds.
    @Test(arguments: [ServerConfiguration().maxFramePayload / 2, 1])
    func reattachingAfterADroppedConnectionDeliversTheSameResults(statusAnswerBytes: Int) async throws {
        let fixture = try BatchFixture(holdAfter: 3, statusAnswerBytes: statusAnswerBytes)
        let variants = BatchFixture.smaVariants(8)
        try await withServer(service: fixture.served) { _, port in
            let proxy = try await CuttableProxy.start(targetPort: port)
            let clock = ManualClock()
            let client = BacktestClient(port: proxy.port)
            let stream = client.runBatch(variants, settings: BatchFixture.sixYears, maxParallel: 1,
                                         reattach: ReattachPolicy(clock: clock))
            var iterator = stream.makeAsyncIterator()
            var outcome = BatchOutcome()
            // One at a time: v0...v2 stream; v3 is done but its update is held on the server.
            for _ in 0..<3 { outcome.updates.append(try #require(try await iterator.next())) }
            try await within("the batch reaching the gate") { () async -> Void in await fixture.gate.arrival() }

            proxy.cutAll()
            // The client re-attached at once, delivered v3 from the status, then waits 1 s.
            #expect(try await within("a poll's sleep") { try await clock.nextSleep() } == .seconds(1))
            let fromStatus = try #require(try await iterator.next())
            #expect(fromStatus.results.map(\.index) == [3])
            #expect(fromStatus.state == .partial)
            outcome.updates.append(fromStatus)
            let job = try await fixture.service.jobs.job(id: outcome.updates[0].batchID)
            #expect(await job.state == .partial, "the server kept the batch running after the disconnect")
            await fixture.gate.open()
            try await poll(timeout: .seconds(100)) { await job.state != .partial }  // the batch's last variants, under the whole suite's load (a hang guard: 30 s was passed with the machine loaded 3x)
            clock.advance(by: .seconds(1))
            while let update = try await iterator.next() { outcome.updates.append(update) }

            let uninterrupted = try await BatchOutcome.collect(
                BacktestClient(port: port).runBatch(variants, settings: BatchFixture.sixYears, maxParallel: 1))
            let reattached = outcome.results
            let expected = uninterrupted.results
            #expect(reattached.keys.sorted() == Array(0..<8), "every variant exactly once")
            for index in 0..<8 {
                expectSameSimulation(reattached[index], expected[index], "variant \(index) re-attached vs uninterrupted")
            }
            #expect(outcome.updates.filter { $0.state == .final }.count == 1)
            let final = try #require(outcome.final)
            let reference = try #require(uninterrupted.final)
            #expect(final.batchID == outcome.updates[0].batchID)
            #expect(final.completed == reference.completed)
            #expect(final.total == reference.total)
            let afterFinal = outcome.updates.drop { $0.results.map(\.index) != [3] }.dropFirst().flatMap(\.results).map(\.index)
            #expect(afterFinal.sorted() == [4, 5, 6, 7], "the status answers bring what the stream missed")
            #expect(final.results.map(\.index) == (statusAnswerBytes == 1 ? [7] : [4, 5, 6, 7]))
            #expect(final.stats?.barsProcessed == reference.stats?.barsProcessed)
            #expect(final.stats?.indicatorSeries == reference.stats?.indicatorSeries)
            #expect(final.stats?.apiCalls == reference.stats?.apiCalls)
            #expect(fixture.probe.started.filter { $0 == "v3" }.count == 2, "v3 ran once per batch, not again on re-attach")
            await client.close()
            await proxy.stop()
        }
    }

    @Test func pollingFollowsTheProgressiveSchedule() async throws {
        let fixture = try BatchFixture(holdAfter: 1)
        try await withServer(service: fixture.served) { _, port in
            let clock = ManualClock()
            var batch = try await CutBatch.start(fixture, port: port, variants: 3, reattach: ReattachPolicy(clock: clock))
            let first = batch.first

            // Issue #6: 1 s for the first 30 s, then 2 s to 60 s, then 5 s to 120 s.
            let expected = Array(repeating: Duration.seconds(1), count: 30) + Array(repeating: .seconds(2), count: 15)
                + Array(repeating: .seconds(5), count: 3)
            var delays: [Duration] = []
            for _ in expected {
                let delay = try await within("a poll's sleep") { try await clock.nextSleep() }
                delays.append(delay)
                clock.advance(by: delay)
            }
            #expect(delays == expected)
            await fixture.gate.open()
            let job = try await fixture.service.jobs.job(id: first.batchID)
            try await poll(timeout: .seconds(100)) { await job.state != .partial }  // the batch's last variants, under the whole suite's load (a hang guard: 30 s was passed with the machine loaded 3x)
            clock.advance(by: try await within("a poll's sleep") { try await clock.nextSleep() })
            var rest: [ProgressUpdate] = []
            while let update = try await batch.updates.next() { rest.append(update) }
            #expect(rest.last?.state == .final)
            #expect(Set(([first] + rest).flatMap { $0.results.map(\.index) }) == [0, 1, 2])
            await batch.close()
        }
    }

    @Test func anExpiredBatchEndsTheStreamWithNotFound() async throws {
        let fixture = try BatchFixture(holdAfter: 1, retention: .zero)
        try await withServer(service: fixture.served) { _, port in
            let clock = ManualClock()
            var batch = try await CutBatch.start(fixture, port: port, variants: 3, reattach: ReattachPolicy(clock: clock))
            let first = batch.first
            let delay = try await within("a poll's sleep") { try await clock.nextSleep() }
            let job = try await fixture.service.jobs.job(id: first.batchID)
            await fixture.gate.open()
            try await poll(timeout: .seconds(100)) { await job.state != .partial }  // the batch's last variants, under the whole suite's load (a hang guard: 30 s was passed with the machine loaded 3x)
            // Retention zero: the finished job is gone by the next poll.
            try await poll { await job.finishedAt.map { $0 < .now } ?? false }
            clock.advance(by: delay)
            let error = try await #require(throws: BacktestError.self) {
                while try await batch.updates.next() != nil {}
            }
            #expect(error.code == .notFound)
            #expect(error.field == "get_batch_status.batch_id")
            await batch.close()
        }
    }

    @Test func withoutReattachALostConnectionIsUnavailable() async throws {
        let fixture = try BatchFixture(holdAfter: 1)
        try await withServer(service: fixture.served) { _, port in
            var batch = try await CutBatch.start(fixture, port: port, variants: 3, reattach: .disabled)
            let error = try await #require(throws: BacktestError.self) {
                while try await batch.updates.next() != nil {}
            }
            #expect(error == BacktestError(.unavailable, "connection closed before the call finished"))
            await fixture.gate.open()
            await batch.close()
        }
    }
}

extension BatchReattachTests {
    /// Issue #6: a disconnect stops the remaining variants, unless a client re-attaches (the
    /// tests above re-attach at once, well within the default 150 s).
    @Test func aLostBatchNobodyReattachesToStopsItsRemainingVariants() async throws {
        let fixture = try BatchFixture(holdAfter: 1, abandonAfter: .zero)
        try await withServer(service: fixture.served) { server, port in
            let batch = try await CutBatch.start(fixture, port: port, variants: 6, reattach: .disabled)
            try await poll { server.connectionCount == 0 }  // the server saw the connection go
            await fixture.gate.open()
            let job = try await fixture.service.jobs.job(id: batch.first.batchID)
            try await poll(timeout: .seconds(100)) { await job.state != .partial }  // the batch's last variants, under the whole suite's load (a hang guard: 30 s was passed with the machine loaded 3x)
            #expect(await job.state == .cancelled)
            #expect(await job.snapshot().error?.message.contains("no client re-attached") == true)
            #expect(fixture.probe.started == ["v0", "v1"], "no variant started after the loss")
            await batch.close()
        }
    }
}

@Suite struct PollScheduleTests {
    @Test(arguments: [
        (0.0, 1.0), (29.999, 1.0), (30.0, 2.0), (59.5, 2.0), (60.0, 5.0), (119.0, 5.0), (120.0, 10.0),
        (299.0, 10.0), (300.0, 30.0), (599.0, 30.0), (600.0, 60.0), (86_400.0, 60.0),
    ])
    func standardScheduleMatchesTheIssue(elapsedSeconds: Double, delaySeconds: Double) {
        #expect(PollSchedule.standard.delay(afterElapsed: .seconds(elapsedSeconds)) == .seconds(delaySeconds))
    }
}
