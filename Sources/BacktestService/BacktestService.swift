import BacktestCore
import BacktestModel
import BacktestProtocol
import Atomics
import Logging
import NIOCore

/// What a handler knows about the call it serves.
package struct CallContext: Sendable {
    package var streamID: UInt32
    package var requestID: String
    package var client: String
    /// When the call's deadline expires the server answers DEADLINE_EXCEEDED and cancels the task.
    package var deadline: NIODeadline
    package var logger: Logger
    /// Set once the call's connection is closed (by the peer, the network or the server).
    package var connection: ConnectionState

    package init(streamID: UInt32, requestID: String = "", client: String = "", deadline: NIODeadline = .distantFuture,
                logger: Logger = Logger(label: "backtestd.call"), connection: ConnectionState = ConnectionState()) {
        self.streamID = streamID
        self.requestID = requestID
        self.client = client
        self.deadline = deadline
        self.logger = logger
        self.connection = connection
    }
}

/// Whether a connection is gone. It tells a call that was cancelled because its connection was
/// lost apart from one cancelled on a live connection (CANCEL, deadline): work a client can
/// re-attach to, a batch, keeps running in the first case and stops in the second.
package final class ConnectionState: Sendable {
    private let lost = ManagedAtomic(false)
    /// When it was lost, in NIODeadline's uptime nanoseconds (0 while connected).
    private let lostAtNanos = ManagedAtomic<UInt64>(0)

    package init() {}

    /// True once the connection closed. Set before the connection's calls are cancelled, so a
    /// cancellation handler that reads it sees why it runs.
    package var isLost: Bool { lost.load(ordering: .acquiring) }

    /// When the connection was lost; nil while it is up.
    package var lostAt: NIODeadline? {
        isLost ? NIODeadline.uptimeNanoseconds(lostAtNanos.load(ordering: .acquiring)) : nil
    }

    package func markLost() {
        lostAtNanos.store(NIODeadline.now().uptimeNanoseconds, ordering: .releasing)
        lost.store(true, ordering: .releasing)
    }
}

/// The domain behind the wire: the server decodes a call, invokes one of these, and encodes the
/// answer. Each call runs in its own task; cancellation (CANCEL, disconnect, deadline, forced
/// shutdown) arrives as task cancellation. Throw `BacktestError` for a status the client should
/// see; anything else becomes INTERNAL with a generic message (and is logged).
package protocol BacktestService: Sendable {
    func runBacktest(_ request: BacktestRequest, context: CallContext) async throws -> BacktestResult
    /// Streams updates through `emit`, which waits while the client is slow to read (backpressure)
    /// and throws once the call is over (cancelled, deadline). Returning ends the stream with OK.
    func runBatch(_ request: BatchRequest, context: CallContext,
                  emit: @escaping @Sendable (ProgressUpdate) async throws -> Void) async throws
    /// The job's state with its finished results, leaving out `knownIndices` (the caller has them).
    func batchStatus(id: String, knownIndices: Set<Int>, context: CallContext) async throws -> ProgressUpdate
    func serverInfo() async -> ServerInfo
    func purgeCache() async throws -> PurgeCacheResult
    /// Stops batch `id`, whichever connection started it: no variant starts afterwards and the
    /// batch ends CANCELLED. Returns its state afterwards without results (`completed` counts the
    /// variants that finished); a batch that already ended is returned as it is. Throws NOT_FOUND
    /// (field `batch_id`) for an unknown or expired id.
    func cancelBatch(id: String, context: CallContext) async throws -> ProgressUpdate

    /// GetVariantResults: the FULL results of a retained batch's variants (by index, or the
    /// best N by a metric), recomputed from the same data. NOT_FOUND for an unknown, expired or
    /// evicted batch; INVALID_ARGUMENT naming `get_variant_results.indices` for an index outside
    /// the batch.
    func variantResults(batchID: String, selection: VariantSelection, context: CallContext) async throws -> [VariantResult]

    /// A batch's finished results at `positions` in finishing order (0 ..< `completed`; a
    /// position past the end is left out), with the job's state and counts: a page of what
    /// `batchStatus` answers, in O(positions) time, for readers of large batches (the web CSV).
    /// NOT_FOUND (field `batch_id`) for an unknown or expired id. The default throws UNIMPLEMENTED.
    func finishedResults(batchID: String, positions: [Int], context: CallContext) async throws -> ProgressUpdate

    /// GetIndicators: the values of `request.series` on `request.ticker` over the window, from the
    /// same data, cache and calculator as backtests. INVALID_ARGUMENT naming the field
    /// (`get_indicators.ticker`, `get_indicators.series[i]`, `get_indicators.end_date`) for a bad
    /// request; NOT_FOUND (`get_indicators.ticker`) for a ticker the source has no data for;
    /// RESOURCE_EXHAUSTED (`get_indicators.series`) for an answer over
    /// `IndicatorsRequest.maximumValues`.
    func indicators(_ request: IndicatorsRequest, context: CallContext) async throws -> IndicatorsResult
}

// No defaults for `cancelBatch`, `variantResults` and `indicators`: a wrapper that forgot to forward one
// answered UNIMPLEMENTED for a server that has it (MeteredBacktestService did for CancelBatch), so
// every conformer says what it does.

extension BacktestService {
    package func finishedResults(batchID: String, positions: [Int], context: CallContext) async throws -> ProgressUpdate {
        throw BacktestError(.unimplemented, "this service does not page finished results")
    }
}
