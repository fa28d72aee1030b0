import BacktestCore
import BacktestModel
import NIOConcurrencyHelpers

/// The consumer's side of one batch: every variant result exactly once, and exactly one Final
/// last (or an error), whether the updates come from the stream or from GetBatchStatus after a
/// re-attach, which answers with every result finished so far.
///
/// It is also what bounds the client's memory: an update is buffered only when it carries a
/// result not delivered before, or is the Final, so the stream never holds more than
/// `2 × total + 1` updates (one per new result or per progress step, plus the Final), whatever the
/// server sends and however slowly the consumer reads.
final class BatchDelivery: Sendable {
    enum Outcome {
        case running, finished
        /// A status answer left finished results out (its size is bounded): ask again now.
        case incomplete
    }

    private struct State {
        var batchID: String?
        var delivered: Set<Int> = []
        /// The highest `completed` count passed on.
        var reportedCompleted = 0
        var finished = false
    }

    let total: Int
    private let continuation: AsyncThrowingStream<ProgressUpdate, any Error>.Continuation
    private let state = NIOLockedValueBox(State())
    /// Told the batch id once, when the first update announces it.
    private let onBatchID: (@Sendable (String) -> Void)?

    init(total: Int, continuation: AsyncThrowingStream<ProgressUpdate, any Error>.Continuation,
         onBatchID: (@Sendable (String) -> Void)? = nil) {
        self.total = total
        self.continuation = continuation
        self.onBatchID = onBatchID
    }

    /// The batch id once the server announced it; nil before the first update.
    var batchID: String? { state.withLockedValue { $0.batchID } }

    /// The variants whose results were delivered, for GetBatchStatus's `known_indices`.
    var deliveredIndices: [Int] { state.withLockedValue { $0.delivered.sorted() } }

    /// A streamed update: each result in it must be new (a repeat is a server bug, and so is an
    /// index outside the batch).
    func deliverStreamed(_ update: ProgressUpdate) throws(BacktestError) {
        _ = try deliver(update, repeatsAllowed: false)
    }

    /// A GetBatchStatus answer: results already delivered are skipped. `.finished` when the batch
    /// ended (Final delivered, or the stream finished with the batch's error).
    func deliverStatus(_ update: ProgressUpdate) throws(BacktestError) -> Outcome {
        try deliver(update, repeatsAllowed: true)
    }

    func finish(throwing error: (any Error)? = nil) {
        state.withLockedValue { $0.finished = true }
        continuation.finish(throwing: error)
    }

    private func deliver(_ update: ProgressUpdate, repeatsAllowed: Bool) throws(BacktestError) -> Outcome {
        let announced = state.withLockedValue { state in
            guard !state.finished, state.batchID == nil else { return false }
            state.batchID = update.batchID
            return true
        }
        if announced { onBatchID?(update.batchID) }
        let outcome: Result<Outcome, BacktestError> = state.withLockedValue { state in
            guard !state.finished else { return .success(.finished) }
            if let known = state.batchID, known != update.batchID {
                state.finished = true
                return .failure(Self.violation("an update for batch '\(update.batchID.prefix(64))' in batch '\(known)'"))
            }
            state.batchID = update.batchID
            var fresh: [VariantResult] = []
            for result in update.results {
                guard (0..<total).contains(result.index) else {
                    state.finished = true
                    return .failure(Self.violation("a result for variant \(result.index) of a batch of \(total)"))
                }
                if state.delivered.insert(result.index).inserted {
                    fresh.append(result)
                } else if !repeatsAllowed {
                    state.finished = true
                    return .failure(Self.violation("variant \(result.index)'s result twice"))
                }
            }
            var partial = update
            partial.results = fresh
            if repeatsAllowed, update.completed > state.delivered.count {
                // A size-bounded status answer: more finished results wait on the server.
                guard !fresh.isEmpty else {
                    state.finished = true
                    return .failure(Self.violation("a status of \(update.completed) finished variants without any of the missing results"))
                }
                partial.state = .partial
                partial.completed = min(state.delivered.count, total)
                partial.stats = nil
                partial.error = nil
                continuation.yield(partial)
                state.reportedCompleted = max(state.reportedCompleted, partial.completed)
                return .success(.incomplete)
            }
            switch update.state {
            case .partial:
                // An update without a new result is passed on only when it reports progress, at
                // most `total` times.
                partial.completed = min(update.completed, total)
                if !fresh.isEmpty || partial.completed > state.reportedCompleted { continuation.yield(partial) }
                state.reportedCompleted = max(state.reportedCompleted, partial.completed)
                return .success(.running)
            case .final:
                // The Final carries whatever it brings that is new: nothing on a stream from this
                // server, the results the stream missed after a re-attach.
                partial.completed = min(update.completed, total)
                continuation.yield(partial)
                state.finished = true
                continuation.finish()
                return .success(.finished)
            case .cancelled, .failed:
                if !fresh.isEmpty {
                    partial.state = .partial
                    partial.completed = state.delivered.count
                    partial.error = nil
                    continuation.yield(partial)
                }
                state.finished = true
                continuation.finish(throwing: update.error
                    ?? BacktestError(update.state == .cancelled ? .cancelled : .internal, "the batch ended: \(update.statusText)"))
                return .success(.finished)
            }
        }
        return try outcome.get()
    }

    private static func violation(_ what: String) -> BacktestError {
        BacktestError(.internal, "protocol violation: the server sent \(what)")
    }
}
