import BacktestCore
import BacktestModel
import BacktestService
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// `POST /api/batches`: one RunBatch call whose updates go out as server-sent events.
///
/// The batch runs in a task of its own, not in the HTTP handler: when the browser goes away (a
/// closed tab, a broken network, a reload) the call's `ConnectionState` is marked lost and the
/// batch goes on, exactly as for a lost TCP connection (`EngineBacktestService.runBatch`), so the
/// page re-attaches with GetBatchStatus (`GET /api/batches/{id}`). Updates pass from the batch to
/// the response through an `AsyncStream`; a batch's updates are bounded by what the job itself
/// keeps (admitted under the server's batch budget), and they carry summaries, never curves.
///
/// Events (each `data:` one line of JSON):
/// - `update`: an `UpdateDocument` (the first one, 0 complete, names the batch id);
/// - `error`: an `ErrorDocument` when the call ended with an error (cancelled, invalid grid, ...);
/// - `end`: `{}` after the last event.
struct BatchStream {
    let service: any BacktestService
    let request: BatchRequest
    let context: CallContext

    /// The event stream once the batch started (its first update, the id, is on its way), or
    /// the call's error as a JSON error answer when it failed before starting (an invalid grid,
    /// a batch the server's budget does not admit), so those get an HTTP error status.
    func response() async -> Response {
        let (events, sink) = AsyncStream<ByteBuffer>.makeStream()
        // The first outcome: nil once the batch announced its id, or the error that ended it before.
        let (started, startSink) = AsyncStream<BacktestError?>.makeStream(bufferingPolicy: .bufferingOldest(1))
        let connection = context.connection
        let service = self.service
        let request = self.request
        let context = self.context
        // The consumer (the response body) ended: the browser is gone. The batch runs on.
        sink.onTermination = { _ in
            if !connection.isLost { connection.markLost() }
        }
        Task {
            do {
                try await service.runBatch(request, context: context) { update in
                    startSink.yield(nil)
                    startSink.finish()
                    guard !connection.isLost else { throw CancellationError() }
                    if case .terminated = sink.yield(Self.event("update", WebJSON.encode(UpdateDocument(update)))) {
                        throw CancellationError()
                    }
                }
            } catch let error as BacktestError {
                startSink.yield(error)
                sink.yield(Self.event("error", WebJSON.encode(ErrorDocument(error))))
            } catch {
                if !connection.isLost {
                    sink.yield(Self.event("error", WebJSON.encode(ErrorDocument(BacktestError(.cancelled, "the batch stopped")))))
                }
            }
            startSink.finish()
            sink.yield(Self.event("end", Data("{}".utf8)))
            sink.finish()
        }
        for await outcome in started {
            if let error = outcome { return WebDashboard.errorResponse(error) }
            break
        }
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream; charset=utf-8"
        headers[.cacheControl] = "no-store"
        headers[.xContentTypeOptions] = "nosniff"
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            do {
                for await event in events {
                    try await writer.write(event)
                }
                try await writer.finish(nil)
            } catch {
                // The browser went away mid-write: the batch runs on for re-attach.
                connection.markLost()
                throw error
            }
        })
    }

    /// One server-sent event: `event: NAME` and one `data:` line (JSON has no raw line breaks).
    static func event(_ name: String, _ json: Data) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeString("event: \(name)\ndata: ")
        buffer.writeBytes(json)
        buffer.writeString("\n\n")
        return buffer
    }
}
