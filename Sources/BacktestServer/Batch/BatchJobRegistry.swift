import BacktestCore
import BacktestEngine

/// Batch jobs by id. Finished jobs are kept for `retention` so clients can re-attach, then
/// dropped; running jobs are never dropped. Ids are 128 random bits from the system's CSPRNG,
/// so a job is visible only to requests that present its id.
public actor BatchJobRegistry {
    public let retention: Duration
    private var jobs: [String: BatchJob] = [:]

    public init(retention: Duration = .seconds(600)) {
        self.retention = retention
    }

    public func create(total: Int) -> BatchJob {
        var id: String
        repeat { id = BatchJobRegistry.randomID() } while jobs[id] != nil
        let job = BatchJob(id: id, total: total)
        jobs[id] = job
        return job
    }

    /// The job, or NOT_FOUND (also for expired and malformed ids: which one is not revealed).
    public func job(id: String) async throws(BacktestError) -> BatchJob {
        await dropExpired()
        guard let job = jobs[id] else {
            throw BacktestError(.notFound, "no batch with id '\(id.prefix(64))' (unknown, or expired after \(retention))", field: "batch_id")
        }
        return job
    }

    public var count: Int { jobs.count }

    /// Drops finished jobs older than `retention`.
    public func dropExpired(now: ContinuousClock.Instant = .now) async {
        for (id, job) in jobs {
            if let finished = await job.finishedAt, finished.duration(to: now) > retention {
                jobs[id] = nil
            }
        }
    }

    static func randomID() -> String {
        var generator = SystemRandomNumberGenerator()
        let words = [generator.next(), generator.next()] as [UInt64]
        return words.map { word in
            let hex = String(word, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
    }
}
