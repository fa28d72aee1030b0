import BacktestCore
import BacktestModel
@testable import BacktestService
import Testing

@Suite struct BatchJobRegistryTests {
    func result(_ index: Int) -> VariantResult {
        VariantResult(index: index, outcome: .failure(BacktestError(.internal, "variant \(index)")))
    }

    @Test func idsAreLongRandomHexAndUnique() async {
        let registry = BatchJobRegistry()
        var ids = Set<String>()
        for _ in 0..<500 {
            let job = await registry.create(total: 1)
            #expect(job.id.count == 32)
            #expect(job.id.allSatisfy { $0.isHexDigit })
            ids.insert(job.id)
        }
        #expect(ids.count == 500)
    }

    @Test func unknownIdIsNotFound() async throws {
        let registry = BatchJobRegistry()
        _ = await registry.create(total: 1)
        await #expect(throws: BacktestError.self) { try await registry.job(id: "0123456789abcdef0123456789abcdef") }
        let error = await #expect(throws: BacktestError.self) { try await registry.job(id: "nope") }
        #expect(error?.code == .notFound)
        #expect(error?.field == "batch_id")
    }

    @Test func snapshotHasEveryResultInIndexOrderAndStragglersAreDropped() async throws {
        let registry = BatchJobRegistry()
        let job = await registry.create(total: 3)
        let first = await job.record(result(2))
        #expect(first?.completed == 1)
        #expect(first?.state == .partial)
        #expect(first?.statusText == "Partial (1/3 complete)")
        _ = await job.record(result(0))
        let partial = try await registry.job(id: job.id).snapshot()
        #expect(partial.results.map(\.index) == [0, 2])
        #expect(partial.state == .partial)

        let cancelled = await job.finish(.cancelled, error: BacktestError(.cancelled, "client cancelled"))
        #expect(cancelled.state == .cancelled)
        #expect(await job.record(result(1)) == nil, "a result after the end is not recorded")
        #expect(await job.finish(.final).state == .cancelled, "the first terminal state wins")
        #expect(await job.snapshot().completed == 2)
    }

    @Test func finishedJobsExpireAfterRetentionRunningOnesNever() async throws {
        let registry = BatchJobRegistry(retention: .seconds(60))
        let running = await registry.create(total: 2)
        let finished = await registry.create(total: 1)
        _ = await finished.record(result(0))
        await finished.finish(.final)

        await registry.dropExpired(now: .now.advanced(by: .seconds(30)))
        #expect(await registry.count == 2)
        await registry.dropExpired(now: .now.advanced(by: .seconds(3600)))
        #expect(await registry.count == 1)
        #expect(try await registry.job(id: running.id) === running)
        await #expect(throws: BacktestError.self) { try await registry.job(id: finished.id) }
    }

    /// Expiry needs no lookup; the retention bound evicts nothing (it limits FULL results, which
    /// become summaries beyond it): finished batches over it stay until their retention ends or
    /// admission needs their room, oldest first, each connection's newest last. A sixth tester's
    /// retained 1,000,000-variant grid went as soon as any other batch finished, even one
    /// cancelled with no results, the same client's too.
    @Test func overTheRetentionBoundBatchesStayUntilAdmissionNeedsTheirRoom() async throws {
        final class Owner: Sendable {}
        let owners = (Owner(), Owner())  // alive for the whole test: identifiers of freed objects may coincide
        let (a, b) = (ObjectIdentifier(owners.0), ObjectIdentifier(owners.1))
        let kept = BatchJob.estimatedBytes(result(0))  // a failed variant: its encoded size, about 520 bytes
        let registry = BatchJobRegistry(retention: .seconds(600), maxRetainedBytes: kept / 2, budgetBytes: 4 * kept)
        func finished(_ owner: ObjectIdentifier, results: Int) async -> BatchJob {
            let job = await registry.create(total: 1, owner: owner)
            for _ in 0..<results { _ = await job.record(result(0)) }
            await job.finish(results == 0 ? .cancelled : .final)
            return job
        }
        let big = await finished(a, results: 1)
        let cancelled = await finished(a, results: 0)
        let other = await finished(b, results: 1)
        let newest = await finished(a, results: 1)
        await registry.dropExpired()
        for job in [big, cancelled, other, newest] {
            #expect(try await registry.job(id: job.id) === job)
        }
        #expect(registry.retainedBytes == 3 * kept)
        // Admission needs two results' room: the oldest that are not their connection's newest
        // go first (A's first two), then the oldest of the rest (B's).
        let admitted = try await registry.admit(total: 1, source: BatchAdmissionTests.source, estimatedBytes: 3 * kept)
        for job in [big, cancelled, other] {
            let error = await #expect(throws: BacktestError.self) { try await registry.job(id: job.id) }
            #expect(error?.message.contains("was evicted before its retention ended: running batches needed its room") == true)
        }
        #expect(try await registry.job(id: newest.id) === newest)
        _ = await admitted.finish(.final)
        // Past its retention a batch expires all the same.
        await registry.dropExpired(now: .now.advanced(by: .seconds(601)))
        let expired = await #expect(throws: BacktestError.self) { try await registry.job(id: newest.id) }
        #expect(expired?.message.contains("expired") == true)
    }
}
