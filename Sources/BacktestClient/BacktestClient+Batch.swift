import BacktestCore
import BacktestModel
import BacktestProtocol
import NIOConcurrencyHelpers
import NIOCore

extension BacktestClient {
    /// The progress of a batch: one update per finished group of variants, each variant's result
    /// exactly once, and last exactly one update with state `.final` (with the batch's statistics
    /// and any results not delivered before it: after a re-attach, those the stream missed),
    /// after which the sequence ends. A batch that fails or is cancelled on the server throws its
    /// error instead of the Final.
    ///
    /// **Batch id.** The server announces the batch id in a first update with nothing completed,
    /// sent before it fetches data; `onBatchID` is called with it once (that update itself is not
    /// delivered: it carries no progress). The id is what `batchStatus(id:)` and
    /// `cancelBatch(id:)` take.
    ///
    /// **Re-attach.** When the connection is lost after the server announced the batch id, the server keeps running the batch while a client polls for it (it stops
    /// a batch nobody asks about for 150 s); with `reattach` enabled (the default)
    /// this client then polls `batchStatus(id:)` on a new connection, on `reattach.schedule`, and
    /// delivers the results the stream did not, then the Final. It gives up with the last error
    /// after `reattach.giveUpAfter`; NOT_FOUND (the finished batch expired on the server) or any
    /// other error except UNAVAILABLE ends the sequence with that error. A connection lost before
    /// the id arrived throws UNAVAILABLE "connection closed before the call finished": the
    /// client cannot know the batch's id.
    ///
    /// **Cancelling** the iterating task sends CANCEL, which stops the batch on the server. While
    /// re-attached there is no call left to cancel: cancelling stops the polling and sends
    /// CancelBatch (best effort, waiting at most 5 s). To stop a batch and learn how far
    /// it got, call `cancelBatch(id:)` instead: the sequence then ends with its CANCELLED error.
    ///
    /// **Buffering.** The sequence buffers updates the consumer has not read yet without a fixed
    /// limit, and that is deliberate: a batch has a known finite size, and only updates that carry
    /// a result not delivered before, report more progress, or are the one Final are buffered, so
    /// at most `2 × variants.count + 1` updates are ever held (one per variant from this server),
    /// whatever the server sends. Dropping updates is
    /// never acceptable, and pausing reads would stall every other call on the shared connection,
    /// including its keepalive answers. The server's own bound (`maxOutboundBuffer`) paces it to
    /// the socket, not to the consumer.
    public nonisolated func runBatch(
        _ variants: [Strategy], settings: BacktestSettings, maxParallel: Int = 0, timeout: Duration? = nil,
        reattach: ReattachPolicy = .default, detail: ResultDetail = .default,
        onBatchID: (@Sendable (String) -> Void)? = nil
    ) -> AsyncThrowingStream<ProgressUpdate, any Error> {
        runBatch(BatchRequest(variants: variants, settings: settings, maxParallel: maxParallel, detail: detail),
                 total: variants.count, timeout: timeout, reattach: reattach, onBatchID: onBatchID)
    }

    /// A sweep: the variants `grid` expands to (the server expands it; `Grid.count` of them),
    /// SUMMARY results by default for more than `ResultDetail.fullUpTo` variants, each carrying
    /// its parameter values. Delivery, re-attach and cancelling as for `runBatch(_:settings:)`;
    /// `onBatchID` is called once with the batch's id, from the first update (before the data
    /// fetch). FULL results of chosen variants afterwards: `variantResults(batchID:selection:)`.
    public nonisolated func runSweep(
        _ grid: Grid, settings: BacktestSettings, detail: ResultDetail = .default, maxParallel: Int = 0,
        timeout: Duration? = nil, reattach: ReattachPolicy = .default,
        onBatchID: (@Sendable (String) -> Void)? = nil
    ) -> AsyncThrowingStream<ProgressUpdate, any Error> {
        runBatch(BatchRequest(grid: grid, settings: settings, maxParallel: maxParallel, detail: detail),
                 total: grid.count, timeout: timeout, reattach: reattach, onBatchID: onBatchID)
    }

    private nonisolated func runBatch(
        _ request: BatchRequest, total: Int, timeout: Duration?, reattach: ReattachPolicy,
        onBatchID: (@Sendable (String) -> Void)?
    ) -> AsyncThrowingStream<ProgressUpdate, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: ProgressUpdate.self)
        let delivery = BatchDelivery(total: total, continuation: continuation, onBatchID: onBatchID)
        let driver = Task {
            do {
                try await self.streamBatch(request, timeout: timeout, delivery: delivery, reattach: reattach)
                delivery.finish()
            } catch {
                delivery.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in driver.cancel() }
        return stream
    }

    /// Streams the batch; after a lost connection, re-attaches.
    private func streamBatch(_ request: BatchRequest, timeout: Duration?, delivery: BatchDelivery,
                             reattach: ReattachPolicy) async throws {
        let ended = await streamOnce(request, timeout: timeout, delivery: delivery)
        switch ended {
        case .success(let response):
            if let error = response.status.error { throw error }
        case .failure(let error as BacktestError) where error.code == .unavailable && reattach.isEnabled:
            guard let id = delivery.batchID else { throw error }
            do {
                try await poll(id, delivery: delivery, policy: reattach, lost: error)
            } catch where Task.isCancelled {
                await cancelAbandoned(id, timeout: min(reattach.pollTimeout, .seconds(5)))
                throw error
            }
        case .failure(let error):
            throw error
        }
    }

    /// One RunBatch call, retried on a new connection when a GOAWAY says the server did not
    /// process it (it cannot have run). Cancelling the task sends CANCEL.
    private func streamOnce(_ request: BatchRequest, timeout: Duration?,
                            delivery: BatchDelivery) async -> Result<CallResponse, any Error> {
        var attempt = 0
        while true {
            attempt += 1
            let ended = await streamCall(request, timeout: timeout, delivery: delivery)
            guard case .failure(let notProcessed as ClientConnectionHandler.CallNotProcessed) = ended else { return ended }
            if attempt >= Self.maxAttemptsForUnprocessedCalls { return .failure(notProcessed.error) }
        }
    }

    private func streamCall(_ request: BatchRequest, timeout: Duration?,
                            delivery: BatchDelivery) async -> Result<CallResponse, any Error> {
        let connection: ClientConnection
        do {
            connection = try await readyConnection()
        } catch {
            return .failure(error)
        }
        let limits = configuration.decodeLimits
        let call = StreamedCall()
        let ended = connection.channel.eventLoop.makePromise(of: CallResponse.self)
        let result: Result<CallResponse, any Error>
        do {
            let cancel = try await connection.streaming(
                self.request(.runBatch(request), timeout: timeout), localDeadline: Self.localDeadline(timeout),
                onData: { payload in
                    do throws(BacktestError) {
                        try delivery.deliverStreamed(Self.decodeUpdate(payload, limits: limits))
                    } catch {
                        call.abandon(with: error)
                    }
                },
                onEnd: { result in ended.completeWith(call.violation.map { .failure($0) } ?? result) })
            call.started(cancel: cancel)
            result = await withTaskCancellationHandler {
                do {
                    return .success(try await ended.futureResult.get())
                } catch {
                    return .failure(error)
                }
            } onCancel: {
                call.cancel()
            }
        } catch {
            ended.fail(error)
            result = .failure(error)
        }
        if case .failure(is ClientConnectionHandler.CallNotProcessed) = result { forget(connection) }
        return result
    }

    private static func decodeUpdate(_ payload: ByteBuffer, limits: DecodeLimits) throws(BacktestError) -> ProgressUpdate {
        do {
            return try ProgressUpdate.decode(payload, limits: limits)
        } catch {
            throw BacktestError(.internal, "malformed progress update: \(error)", cause: error)
        }
    }

    /// The consumer stopped following a re-attached batch: stop it on the server too. From a task
    /// of its own, because this one is cancelled (its calls would be cancelled at once).
    private func cancelAbandoned(_ id: String, timeout: Duration?) async {
        await Task { _ = try? await self.cancelBatch(id: id, timeout: timeout) }.value
    }

    /// Polls GetBatchStatus on the schedule until the batch ends. UNAVAILABLE (server not
    /// reachable yet) and DEADLINE_EXCEEDED (a poll that took too long) mean "try again later".
    private func poll(_ id: String, delivery: BatchDelivery, policy: ReattachPolicy, lost: BacktestError) async throws {
        let timer = PollTimer(policy.clock)
        var lastError = lost
        while true {
            try Task.checkCancellation()
            do {
                let answer = try await batchStatus(id: id, knownIndices: delivery.deliveredIndices, timeout: policy.pollTimeout)
                switch try delivery.deliverStatus(answer) {
                case .finished: return
                case .incomplete: continue  // the rest of the finished results, at once
                case .running: break
                }
            } catch let error as BacktestError where error.code == .unavailable || error.code == .deadlineExceeded {
                lastError = error
            }
            let elapsed = timer.elapsed()
            guard elapsed < policy.giveUpAfter else {
                throw BacktestError(lastError.code, "gave up re-attaching to batch \(id) after \(elapsed): \(lastError.message)")
            }
            try await timer.sleep(policy.schedule.delay(afterElapsed: elapsed))
        }
    }
}

/// A started RunBatch call's cancel function, which arrives after the call started, and why the
/// client abandoned it. A cancel or a protocol violation seen before the function arrived is
/// applied when it does.
final class StreamedCall: Sendable {
    private struct State {
        var cancel: (@Sendable () -> Void)?
        var cancelRequested = false
        var violation: BacktestError?
    }

    private let state = NIOLockedValueBox(State())

    /// The server broke the protocol; the call ends with this error.
    var violation: BacktestError? { state.withLockedValue { $0.violation } }

    func started(cancel: @escaping @Sendable () -> Void) {
        let cancelNow = state.withLockedValue { state in
            state.cancel = cancel
            return state.cancelRequested
        }
        if cancelNow { cancel() }
    }

    func cancel() {
        let cancel = state.withLockedValue { state in
            state.cancelRequested = true
            return state.cancel
        }
        cancel?()
    }

    /// Ends the call with `error` (sending CANCEL: the server need not go on).
    func abandon(with error: BacktestError) {
        state.withLockedValue { state in
            if state.violation == nil { state.violation = error }
        }
        cancel()
    }
}
