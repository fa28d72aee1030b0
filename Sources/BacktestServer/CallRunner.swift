import BacktestCore
import BacktestProtocol
import BacktestService
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Runs one call off the event loop: decode the REQUEST, arm the deadline, invoke the service,
/// encode the answer, and hand it to the connection (which drops it if the stream already ended).
struct CallRunner: Sendable {
    let streamID: UInt32
    let receivedAt: NIODeadline
    let configuration: ServerConfiguration
    let service: any BacktestService
    let logger: Logger
    let connection: NIOLoopBound<ServerConnectionHandler>
    let connectionState: ConnectionState
    /// The server's bound on large requests' memory (`RequestMemoryBudget`).
    let requestMemory: RequestMemoryBudget

    private var eventLoop: any EventLoop { connection.eventLoop }

    /// Runs the call of `received`; its payload (and its part of the inbound budget) is let go
    /// once decoded, or when the call ends without decoding it.
    func run(_ received: ReceivedPayload) async {
        var header = ResponseHeader(serverVersion: configuration.serverVersion)
        let response: CallResponse
        // A large request waits for room in the server's memory budget before it is decoded, and
        // holds it until its answer is encoded.
        let reserved = RequestMemoryBudget.estimate(payloadBytes: received.size)
        var reservation: RequestMemoryBudget.Reservation?
        // The call's deadline once armed: work cancelled after it passed ends DEADLINE_EXCEEDED,
        // as the connection's timer answers it (the log said CANCELLED).
        var deadline = NIODeadline.distantFuture
        defer {
            received.release()
            if let reservation {
                let held = reservation.amount
                reservation.release()
                // A large call's decoded strategy and working memory are freed by now (however it
                // ended: answered, refused, cancelled): give the pages back, so the next large
                // call starts from a trimmed heap instead of the arenas' high-water mark.
                if held >= MemoryReturn.largeRequestReservation { MemoryReturn.soon() }
            }
        }
        do {
            if reserved > 0 {
                // Its deadline runs from its arrival while it waits (the header is read from the
                // bytes; the request id is echoed once decoded): a call whose deadline passes while
                // it waits, or has passed already, ends DEADLINE_EXCEEDED and is never decoded.
                let timeoutMs = received.peek(CallRequest.peekTimeoutMs) ?? nil
                deadline = armDeadline(timeoutMs: timeoutMs ?? 0, requestID: "")
                reservation = try await RequestMemoryBudget.Reservation(requestMemory, amount: reserved)
                try Task.checkCancellation()
                if NIODeadline.now() >= deadline {
                    // The answer the connection's deadline timer gives too (whichever comes first).
                    throw deadlineExceeded(deadline)
                }
            }
            let request = try await decode(received)
            // An over-long request id is refused and not echoed (its answer could not be sent).
            header.requestID = EchoBounds.echoable(request.header.requestID)
            try EchoBounds.check(request.header)
            let method = try request.method.get()
            try EchoBounds.check(method)
            let context = armDeadline(request.header)
            deadline = context.deadline
            context.logger.debug("call started", metadata: ["method": "\(method.name)"])
            // Every call carries a reservation its analysis may grow (`BacktestPipeline.prepare`).
            if reservation == nil { reservation = try await RequestMemoryBudget.Reservation(requestMemory, amount: 0) }
            let result = try await RequestMemoryBudget.$current.withValue(reservation) { try await invoke(method, context: context) }
            response = CallResponse(header: header, result: result)
        } catch where ((error as? BacktestError)?.code == .cancelled || error is CancellationError) && NIODeadline.now() >= deadline {
            response = CallResponse(header: header, status: CallStatus(deadlineExceeded(deadline)))
        } catch let error as BacktestError {
            // The cause (curl, Redis, files, ...) goes to the log only; the client gets code,
            // message and field.
            if error.cause != nil {
                logger.warning("call failed", metadata: ["stream": "\(streamID)", "error": "\(LogText(error.logDescription, limit: LogText.messageLimit))"])
            }
            response = CallResponse(header: header, status: CallStatus(error))
        } catch is CancellationError {
            response = CallResponse(header: header, status: CallStatus(code: .cancelled, message: "call cancelled"))
        } catch {
            logger.error("call failed with an unexpected error", metadata: ["stream": "\(streamID)", "error": "\(LogText(String(describing: error), limit: LogText.messageLimit))"])
            response = CallResponse(header: header, status: CallStatus(code: .internal, message: "internal error"))
        }
        let elapsedMs = Double((NIODeadline.now() - receivedAt).nanoseconds) / 1e6
        logger.debug("call finished", metadata: [
            "stream": "\(streamID)", "status": "\(response.status.code)", "ms": "\(elapsedMs)",
        ])
        // Every call ends with one RESPONSE: an answer too large for a frame becomes a short
        // RESOURCE_EXHAUSTED (its header's echo is bounded by `EchoBounds`).
        let complete = await encode(response)
        let encoded = complete.readableBytes <= configuration.maxFramePayload ? complete
            : CallResponse(header: header, status: CallStatus(code: .resourceExhausted,
                message: "the answer is \(complete.readableBytes) bytes, above the frame limit of \(configuration.maxFramePayload)"))
                .encoded()
        let connection = self.connection
        let id = streamID
        eventLoop.execute { connection.value.finish(id, encoded) }
        // A large answer (sent or refused) leaves its memory in malloc's arenas: give it back.
        if complete.readableBytes >= MemoryReturn.largeAnswerBytes { MemoryReturn.soon() }
    }

    /// DEADLINE_EXCEEDED for `deadline`, with the message the connection's deadline timer gives.
    private func deadlineExceeded(_ deadline: NIODeadline) -> BacktestError {
        BacktestError(.deadlineExceeded, "deadline of \((deadline - receivedAt).nanoseconds / 1_000_000) ms exceeded")
    }

    /// Payloads above this size are decoded, and answers estimated above it encoded, on the
    /// compute threads (as this connection's work, `ComputeThreads`) instead of this task. Why:
    /// this task runs on Swift's cooperative pool (a thread per core, shared by every call's
    /// tasks); decoding a 4 MiB request or encoding a 4 MiB answer takes tens of milliseconds
    /// there, during which other connections' calls wait for a thread. Smaller ones (the vast
    /// majority, microseconds each) stay here: a trip through the compute queue would cost more.
    static let offloadBytes = RequestMemoryBudget.threshold

    /// Decodes the payload and lets go of it (its bytes and their reservation) before returning.
    private func decode(_ received: ReceivedPayload) async throws -> CallRequest {
        defer { received.release() }
        guard let payload = received.take() else { throw CancellationError() }
        let limits = configuration.decodeLimits
        guard payload.readableBytes > Self.offloadBytes else { return try CallRequest.decode(payload, limits: limits) }
        return try await ComputeThreads.$tenant.withValue(ComputeTenant(connectionState)) {
            try await ComputeThreads.shared.run { Result { try CallRequest.decode(payload, limits: limits) } }
        }.get()
    }

    private func encode(_ response: CallResponse) async -> ByteBuffer {
        await Self.encode(estimatedBytes: response.estimatedBytes, connectionState: connectionState) { response.encoded() }
    }

    /// Runs `encode` on the compute threads when the answer is estimated above `offloadBytes`,
    /// else here. (A fourth tester's 320 GetBatchStatus calls with a 3.5 MB FULL result each,
    /// encoded on the cooperative pool, kept other connections' GetServerInfo waiting 4-28 s.)
    private static func encode(estimatedBytes: Int, connectionState: ConnectionState,
                               _ encode: @escaping @Sendable () -> ByteBuffer) async -> ByteBuffer {
        guard estimatedBytes > Self.offloadBytes else { return encode() }
        do {
            return try await ComputeThreads.$tenant.withValue(ComputeTenant(connectionState)) {
                try await ComputeThreads.shared.run { encode() }
            }
        } catch {
            // Cancelled before a thread took it: the call has ended (CANCEL, deadline, the
            // connection gone or evicted) and nothing will be written for it, so nothing is
            // encoded. (Encoding here instead put every cancelled answer on the cooperative pool:
            // evictions cancelling hundreds of 3.5 MB GetBatchStatus answers kept other
            // connections' GetServerInfo waiting 4 s.) Otherwise (the compute threads shut down)
            // it is encoded here.
            return Task.isCancelled ? ByteBuffer() : encode()
        }
    }

    /// Tells the connection when the call's deadline falls (`timeoutMs` from the REQUEST's
    /// arrival; 0 = the maximum, capped at the maximum), with the request id its
    /// DEADLINE_EXCEEDED answer echoes; returns the deadline. Arming again replaces it.
    @discardableResult
    private func armDeadline(timeoutMs: UInt32, requestID: String) -> NIODeadline {
        let timeout = configuration.callTimeout(requestedMs: timeoutMs)
        let deadline = receivedAt + timeout
        let connection = self.connection
        let id = streamID
        eventLoop.execute {
            connection.value.armDeadline(id, at: deadline, requestID: requestID, timeout: timeout)
        }
        return deadline
    }

    /// The call's deadline: its timeout (0 = the maximum), capped at the server's maximum,
    /// measured from when the REQUEST arrived.
    private func armDeadline(_ header: RequestHeader) -> CallContext {
        let deadline = armDeadline(timeoutMs: header.timeoutMs, requestID: EchoBounds.echoable(header.requestID))
        var callLogger = logger
        callLogger[metadataKey: "stream"] = "\(streamID)"
        if !header.requestID.isEmpty { callLogger[metadataKey: "request_id"] = "\(header.requestID)" }
        return CallContext(streamID: streamID, requestID: header.requestID, client: header.client, deadline: deadline,
                           logger: callLogger, connection: connectionState)
    }

    private func invoke(_ method: CallMethod, context: CallContext) async throws -> CallResult? {
        switch method {
        case .runBacktest(let request):
            return .backtest(try await service.runBacktest(request, context: context))
        case .runBatch(let request):
            let connection = self.connection
            let connectionState = self.connectionState
            let id = streamID
            let limit = configuration.maxFramePayload
            try await service.runBatch(request, context: context) { update in
                let payload = await Self.encode(estimatedBytes: update.encodedSizeEstimate, connectionState: connectionState) { update.encoded() }
                guard payload.readableBytes <= limit else {
                    throw BacktestError(.resourceExhausted,
                        "a progress update of \(payload.readableBytes) bytes exceeds the frame limit of \(limit)")
                }
                // A writer waiting for room fails when its task is cancelled (CancelBatch, or the
                // call's cancellation reaching the batch's work): a client that is not reading
                // cannot hold the batch. The flag covers a cancel before the writer is registered.
                let cancelled = NIOLockedValueBox(false)
                try await withTaskCancellationHandler {
                    try await connection.eventLoop.flatSubmit { () -> EventLoopFuture<Void> in
                        guard !cancelled.withLockedValue({ $0 }) else {
                            return connection.eventLoop.makeFailedFuture(CancellationError())
                        }
                        return connection.value.writeData(id, payload)
                    }.get()
                } onCancel: {
                    cancelled.withLockedValue { $0 = true }
                    connection.eventLoop.execute { connection.value.failDataWriters(of: id) }
                }
            }
            return nil
        case .batchStatus(let batchID, let knownIndices):
            return .batchStatus(try await service.batchStatus(id: batchID, knownIndices: Set(knownIndices), context: context))
        case .serverInfo:
            return .serverInfo(await service.serverInfo())
        case .purgeCache:
            return .purge(try await service.purgeCache())
        case .cancelBatch(let batchID):
            return .batchStatus(try await service.cancelBatch(id: batchID, context: context))
        case .variantResults(let batchID, let selection):
            return .variantResults(
                batchID: batchID, results: try await service.variantResults(batchID: batchID, selection: selection, context: context))
        case .indicators(let request):
            return .indicators(try await service.indicators(request, context: context))
        }
    }
}

extension CallResponse {
    /// A rough size of the encoded answer, in bytes, from what dominates it (orders, daily
    /// curves, indicator values), to decide where to encode it (`CallRunner.offloadBytes`); not a
    /// bound.
    var estimatedBytes: Int {
        switch result {
        case .backtest(let backtest): backtest.encodedSizeEstimate
        case .variantResults(_, let results): results.reduce(0) { $0 + $1.encodedSizeEstimate }
        case .batchStatus(let update): update.encodedSizeEstimate
        case .indicators(let values): values.dates.count * (12 + 10 * (values.series.count + 1))
        case .serverInfo, .purge, nil: 0
        }
    }
}

