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

    @Test func expiryNeedsNoLookupAndTheOldestGoFirstOverTheByteBudget() async throws {
        let kept = BatchJob.estimatedBytes(result(0))  // a failed variant: its encoded size, about 520 bytes
        let registry = BatchJobRegistry(retention: .seconds(600), maxRetainedBytes: 3 * kept)
        var finished: [BatchJob] = []
        for _ in 0..<5 {
            let job = await registry.create(total: 1)
            _ = await job.record(result(0))
            await job.finish(.final)
            finished.append(job)
        }
        // Each create swept: the fifth dropped the first job, then the fifth finished over budget.
        #expect(registry.retainedBytes == 4 * kept)
        // Creating the next job sweeps again: the second goes, the three newest fit the budget.
        let running = await registry.create(total: 1)
        #expect(await registry.count == 4)
        #expect(registry.retainedBytes == 3 * kept)
        for job in finished.prefix(2) {
            await #expect(throws: BacktestError.self) { try await registry.job(id: job.id) }
        }
        for job in finished.suffix(3) {
            #expect(try await registry.job(id: job.id) === job)
        }
        #expect(try await registry.job(id: running.id) === running)
    }

    /// The batch that finished last stays even alone over the retention bound (it was admitted
    /// within the budget; a 1,000,000-variant grid was evicted the moment it finished); the next
    /// one to finish sends it out, and admission may take its room.
    @Test func theNewestFinishedBatchStaysOverTheRetentionBound() async throws {
        let kept = BatchJob.estimatedBytes(result(0))
        let registry = BatchJobRegistry(retention: .seconds(600), maxRetainedBytes: kept / 2)
        let big = await registry.create(total: 1)
        _ = await big.record(result(0))
        await big.finish(.final)
        await registry.dropExpired()
        #expect(try await registry.job(id: big.id) === big)
        #expect(registry.retainedBytes == kept)
        let next = await registry.create(total: 1)
        _ = await next.record(result(0))
        await next.finish(.final)
        await registry.dropExpired()
        let error = await #expect(throws: BacktestError.self) { try await registry.job(id: big.id) }
        #expect(error?.message.contains("was evicted before its retention ended") == true)
        #expect(try await registry.job(id: next.id) === next)
        // Past its retention it expires all the same.
        await registry.dropExpired(now: .now.advanced(by: .seconds(601)))
        await #expect(throws: BacktestError.self) { try await registry.job(id: next.id) }
    }

    /// Each connection's newest finished batch is spared by the retention bound: a sixth
    /// tester's retained 1,000,000-variant grid went as soon as another client's batch finished,
    /// even one cancelled with no results. Its owner's next batch, its retention and admission's
    /// need for room still send it out (admission after every batch not so spared).
    @Test func eachConnectionsNewestFinishedBatchStaysOverTheRetentionBound() async throws {
        final class Owner: Sendable {}
        let owners = (Owner(), Owner())  // alive for the whole test: identifiers of freed objects may coincide
        let (a, b) = (ObjectIdentifier(owners.0), ObjectIdentifier(owners.1))
        let kept = BatchJob.estimatedBytes(result(0))
        let registry = BatchJobRegistry(retention: .seconds(600), maxRetainedBytes: kept / 2, budgetBytes: 3 * kept)
        func finished(_ owner: ObjectIdentifier, results: Int) async -> BatchJob {
            let job = await registry.create(total: 1, owner: owner)
            for _ in 0..<results { _ = await job.record(result(0)) }
            await job.finish(results == 0 ? .cancelled : .final)
            return job
        }
        let big = await finished(a, results: 1)
        // Another connection's batches, one cancelled with nothing: A's stays; B's older one goes.
        let cancelled = await finished(b, results: 0)
        let other = await finished(b, results: 1)
        await registry.dropExpired()
        #expect(try await registry.job(id: big.id) === big)
        #expect(try await registry.job(id: other.id) === other)
        await #expect(throws: BacktestError.self) { try await registry.job(id: cancelled.id) }
        // Admission needs room: B's newest and A's are both spared; the older goes first.
        let admitted = try await registry.admit(total: 1, source: BatchAdmissionTests.source, estimatedBytes: 2 * kept)
        await #expect(throws: BacktestError.self) { try await registry.job(id: big.id) }
        #expect(try await registry.job(id: other.id) === other)
        _ = await admitted.finish(.final)
        // A's next batch sends its previous one out.
        let first = await finished(a, results: 1)
        let second = await finished(a, results: 1)
        await registry.dropExpired()
        await #expect(throws: BacktestError.self) { try await registry.job(id: first.id) }
        #expect(try await registry.job(id: second.id) === second)
        // Past its retention it expires all the same.
        await registry.dropExpired(now: .now.advanced(by: .seconds(601)))
        await #expect(throws: BacktestError.self) { try await registry.job(id: second.id) }
    }
}
