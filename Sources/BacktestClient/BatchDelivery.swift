import BacktestCore
import BacktestEngine
import NIOConcurrencyHelpers

/// The consumer's side of one batch: every variant result exactly once, then exactly one Final
/// (or an error), whether the updates come from the stream or from GetBatchStatus after a
/// re-attach, which answers with every result finished so far.
///
/// It is also what bounds the client's memory: an update is buffered only when it carries a
/// result not delivered before, or is the Final, so the stream never holds more than
/// `total + 1` updates, whatever the server sends and however slowly the consumer reads.
final class BatchDelivery: Sendable {
    enum Outcome { case running, finished }

    private struct State {
        var batchID: String?
        var delivered: Set<Int> = []
        var finished = false
    }

    let total: Int
    private let continuation: AsyncThrowingStream<ProgressUpdate, any Error>.Continuation
    private let state = NIOLockedValueBox(State())

    init(total: Int, continuation: AsyncThrowingStream<ProgressUpdate, any Error>.Continuation) {
        self.total = total
        self.continuation = continuation
    }

    /// The batch id once the server announced it; nil before the first update.
    var batchID: String? { state.withLockedValue { $0.batchID } }

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
            switch update.state {
            case .partial:
                partial.completed = state.delivered.count
                if !fresh.isEmpty { continuation.yield(partial) }
                return .success(.running)
            case .final:
                if !fresh.isEmpty {
                    partial.state = .partial
                    partial.completed = state.delivered.count
                    partial.stats = nil
                    continuation.yield(partial)
                }
                var final = update
                final.results = []
                continuation.yield(final)
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
