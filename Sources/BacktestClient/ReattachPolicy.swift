/// How often a client polls GetBatchStatus after losing a batch's stream, as a function of the
/// time since the loss: often at first (the server may be back in a moment, and a short batch is
/// done soon), then less and less, so thousands of clients riding out an outage do not hammer a
/// server that is coming back.
///
/// A pure value: `delay(afterElapsed:)` is all there is, so the schedule is tested without time.
public struct PollSchedule: Sendable, Hashable {
    /// Until `elapsed` reaches `until`, polls are `delay` apart.
    public struct Step: Sendable, Hashable {
        public var until: Duration
        public var delay: Duration

        public init(until: Duration, delay: Duration) {
            self.until = until
            self.delay = delay
        }
    }

    /// Ascending by `until`.
    public var steps: [Step]
    /// The delay once the last step is over.
    public var finalDelay: Duration

    public init(steps: [Step], finalDelay: Duration) {
        self.steps = steps
        self.finalDelay = finalDelay
    }

    /// 1 s for the first 30 s, then 2 s up to 60 s, 5 s up to 120 s, 10 s up to 300 s, 30 s up to
    /// 600 s, and 60 s after that.
    public static let standard = PollSchedule(
        steps: [
            Step(until: .seconds(30), delay: .seconds(1)),
            Step(until: .seconds(60), delay: .seconds(2)),
            Step(until: .seconds(120), delay: .seconds(5)),
            Step(until: .seconds(300), delay: .seconds(10)),
            Step(until: .seconds(600), delay: .seconds(30)),
        ],
        finalDelay: .seconds(60))

    /// The wait before the next poll, `elapsed` after the stream broke.
    public func delay(afterElapsed elapsed: Duration) -> Duration {
        steps.first { elapsed < $0.until }?.delay ?? finalDelay
    }
}

/// What `BacktestClient.runBatch` does when the connection carrying a batch's stream is lost
/// after the server announced the batch id: poll GetBatchStatus on a new connection following
/// `schedule` until the batch ends, delivering the results the stream did not.
public struct ReattachPolicy: Sendable {
    public var isEnabled: Bool
    public var schedule: PollSchedule
    /// Polling ends with the last error once this long has passed since the stream broke without
    /// the server answering. The server keeps a finished batch for its retention time (600 s by
    /// default) and a running one for at most its deadline, so an hour covers the defaults.
    public var giveUpAfter: Duration
    /// The timeout of each GetBatchStatus call.
    public var pollTimeout: Duration
    /// Measures the time since the loss and sleeps between polls. Tests pass a manual clock.
    public var clock: any Clock<Duration>

    public init(isEnabled: Bool = true, schedule: PollSchedule = .standard, giveUpAfter: Duration = .seconds(3600),
                pollTimeout: Duration = .seconds(30), clock: any Clock<Duration> = ContinuousClock()) {
        self.isEnabled = isEnabled
        self.schedule = schedule
        self.giveUpAfter = giveUpAfter
        self.pollTimeout = pollTimeout
        self.clock = clock
    }

    public static var `default`: ReattachPolicy { ReattachPolicy() }
    /// A lost connection ends the stream with UNAVAILABLE, as without re-attach.
    public static var disabled: ReattachPolicy { ReattachPolicy(isEnabled: false) }
}

/// A clock's two uses by the poll loop, with the clock's type erased.
struct PollTimer: Sendable {
    /// Time since the timer was made.
    let elapsed: @Sendable () -> Duration
    let sleep: @Sendable (Duration) async throws -> Void

    init<C: Clock<Duration>>(_ clock: C) {
        let start = clock.now
        elapsed = { start.duration(to: clock.now) }
        sleep = { delay in try await clock.sleep(until: clock.now.advanced(by: delay), tolerance: nil) }
    }
}
