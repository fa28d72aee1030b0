import BacktestCache
import ServiceLifecycle

/// Runs the cache's purge schedule (4:00 PM and 8:00 PM New York time) as a lifecycle service,
/// so it starts and stops with the server.
public struct PurgeService: Service {
    public let scheduler: PurgeScheduler

    public init(scheduler: PurgeScheduler) {
        self.scheduler = scheduler
    }

    public func run() async throws {
        // The scheduler returns when its task is cancelled, which graceful shutdown does.
        await cancelWhenGracefulShutdown { await scheduler.run() }
    }
}
