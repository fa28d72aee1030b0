import BacktestCache
import ServiceLifecycle

/// Runs the cache's purge schedule (4:00 PM and 8:00 PM New York time) as a lifecycle service,
/// so it starts and stops with the server.
package struct PurgeService: Service {
    package let scheduler: PurgeScheduler

    package init(scheduler: PurgeScheduler) {
        self.scheduler = scheduler
    }

    package func run() async throws {
        // The scheduler returns when its task is cancelled, which graceful shutdown does.
        await cancelWhenGracefulShutdown { await scheduler.run() }
    }
}
