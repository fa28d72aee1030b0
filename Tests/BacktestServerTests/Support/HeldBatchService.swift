import BacktestCore
import BacktestModel
import BacktestProtocol
import BacktestService

/// The real service, except that the streamed update carrying variant `holdAfter`'s result waits
/// at a gate before it is sent. The batch (at parallelism 1) has then recorded that variant and
/// starts the next only after the update went out, so a test can cut the connection or cancel
/// "while the batch is at variant k" without guessing at timing, and without blocking a thread.
struct HeldBatchService: BacktestService {
    let base: EngineBacktestService
    let holdAfter: Int?
    let gate: HoldGate

    func runBatch(_ request: BatchRequest, context: CallContext,
                  emit: @escaping @Sendable (ProgressUpdate) async throws -> Void) async throws {
        let (holdAfter, gate) = (self.holdAfter, self.gate)
        try await base.runBatch(request, context: context) { update in
            if let holdAfter, update.results.contains(where: { $0.index == holdAfter }) { try await gate.pass() }
            try await emit(update)
        }
    }

    func runBacktest(_ request: BacktestRequest, context: CallContext) async throws -> BacktestResult {
        try await base.runBacktest(request, context: context)
    }

    func batchStatus(id: String, knownIndices: Set<Int>, context: CallContext) async throws -> ProgressUpdate {
        try await base.batchStatus(id: id, knownIndices: knownIndices, context: context)
    }

    func cancelBatch(id: String, context: CallContext) async throws -> ProgressUpdate {
        try await base.cancelBatch(id: id, context: context)
    }

    func serverInfo() async -> ServerInfo { await base.serverInfo() }
    func purgeCache() async throws -> PurgeCacheResult { try await base.purgeCache() }
    func variantResults(batchID: String, selection: VariantSelection, context: CallContext) async throws -> [VariantResult] {
        try await base.variantResults(batchID: batchID, selection: selection, context: context)
    }
    func indicators(_ request: IndicatorsRequest, context: CallContext) async throws -> IndicatorsResult {
        try await base.indicators(request, context: context)
    }
}

/// A gate whose waiters can be cancelled, and which tells the test when someone arrived.
actor HoldGate {
    private var isOpen = false
    private var arrivals = 0
    private var waiters: [Int: CheckedContinuation<Void, any Error>] = [:]
    private var cancelledBeforeWaiting: Set<Int> = []
    private var arrivalWaiters: [Int: CheckedContinuation<Void, Never>] = [:]
    private var nextID = 0

    /// Returns once the gate is open; throws CancellationError if the task is cancelled first.
    func pass() async throws {
        arrivals += 1
        for (_, waiter) in arrivalWaiters { waiter.resume() }
        arrivalWaiters.removeAll()
        if isOpen { return }
        let id = nextID
        nextID += 1
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                if cancelledBeforeWaiting.remove(id) != nil {
                    continuation.resume(throwing: CancellationError())
                } else {
                    waiters[id] = continuation
                }
            }
        } onCancel: {
            Task { await self.cancel(id) }
        }
    }

    /// Waits until a batch is held at the gate (or the task is cancelled).
    func arrival() async {
        if arrivals > 0 { return }
        let id = nextID
        nextID += 1
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                if cancelledBeforeWaiting.remove(id) != nil { continuation.resume() } else { arrivalWaiters[id] = continuation }
            }
        } onCancel: {
            Task { await self.cancelArrival(id) }
        }
    }

    private func cancelArrival(_ id: Int) {
        if let waiter = arrivalWaiters.removeValue(forKey: id) { waiter.resume() } else { cancelledBeforeWaiting.insert(id) }
    }

    func open() {
        isOpen = true
        for (_, waiter) in waiters { waiter.resume() }
        waiters.removeAll()
    }

    private func cancel(_ id: Int) {
        if let waiter = waiters.removeValue(forKey: id) {
            waiter.resume(throwing: CancellationError())
        } else {
            cancelledBeforeWaiting.insert(id)
        }
    }
}
