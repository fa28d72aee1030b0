import BacktestCore
import BacktestModel
import BacktestReporting
import BacktestService
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// `GET /api/batches/{id}/csv?sort=sharpe`: a final batch's table as CSV, streamed.
///
/// Memory stays bounded by the batch size times a few words, never the document: the handler
/// pages through the job's finished results (`BacktestService.finishedResults`, `pageSize` at a
/// time) keeping only each variant's position, index and sort value, sorts those on
/// `ComputeThreads`, answers 200 with a chunked body, then writes `pageSize` rows at a time:
/// each page's results are read from the job by position and formatted on `ComputeThreads`,
/// never on a NIO event loop. A client that goes away fails the next write (or cancels the
/// handler's task) and the work stops there; `counts` tells tests and operators.
package struct BatchCSV: Sendable {
    let id: String
    let metric: BatchMetric
    let service: any BacktestService
    let context: CallContext

    /// Rows read and written per step.
    static let pageSize = 1024

    /// One variant's place in the table.
    struct Key: Sendable {
        var position: Int32
        var index: Int32
        var value: Double?
    }

    /// CSV downloads since start: begun (answered 200), written to the end, and stopped early
    /// (the client went away or the job changed under the download).
    package struct Counts: Sendable, Equatable {
        package var started = 0
        package var finished = 0
        package var stopped = 0
    }

    private static let countsBox = Mutex(Counts())
    package static var counts: Counts { countsBox.withLock { $0 } }

    /// Runs `work` on `ComputeThreads.shared` as this call's tenant (fair with batches' work).
    func compute<Value: Sendable>(_ work: @escaping @Sendable () -> Value) async throws -> Value {
        try await ComputeThreads.$tenant.withValue(ComputeTenant(context.connection)) {
            try await ComputeThreads.shared.run(work)
        }
    }

    /// The sorted keys of a final batch; FAILED_PRECONDITION (field `batch_id`) while it is not
    /// final, NOT_FOUND for an unknown id.
    func keys() async throws -> [Key] {
        var keys: [Key] = []
        var position = 0
        var total = 0
        repeat {
            let page = try await service.finishedResults(
                batchID: id, positions: Array(position..<(position + Self.pageSize)), context: context)
            guard page.state == .final else {
                throw BacktestError(
                    .failedPrecondition,
                    "batch \(ErrorDocument.bounded(id, 64)) is \(page.statusText): the CSV is written once it is final", field: "batch_id")
            }
            total = page.total
            if keys.isEmpty { keys.reserveCapacity(total) }
            for result in page.results {
                keys.append(Key(position: Int32(clamping: position), index: Int32(clamping: result.index), value: Self.value(result, metric)))
                position += 1
            }
            if page.results.isEmpty { break }
            try Task.checkCancellation()
        } while position < total
        guard keys.count == total else {
            throw BacktestError(.internal, "batch \(ErrorDocument.bounded(id, 64)) reported final with variants missing")
        }
        let (metric, unsorted) = (self.metric, keys)
        return try await compute {
            unsorted.sorted { FinalBatchTable.precedes((Int($0.index), $0.value), (Int($1.index), $1.value), by: metric) }
        }
    }

    /// The answer: 200 with a streamed body once the keys are sorted, or the error as JSON.
    func response() async throws -> Response {
        let keys = try await keys()
        var headers = HTTPFields()
        headers[.contentType] = "text/csv; charset=utf-8"
        headers[.contentDisposition] = "attachment; filename=\"batch-\(WebDashboard.fileSafe(id)).csv\""
        headers[.xContentTypeOptions] = "nosniff"
        let csv = self
        let (id, service, context) = (self.id, self.service, self.context)
        Self.countsBox.withLock { $0.started += 1 }
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            do {
                try await writer.write(ByteBuffer(string: FinalBatchTable.csvHeader + "\r\n"))
                var start = 0
                while start < keys.count {
                    try Task.checkCancellation()
                    let slice = keys[start..<min(keys.count, start + Self.pageSize)]
                    let page = try await service.finishedResults(batchID: id, positions: slice.map { Int($0.position) }, context: context)
                    let rank = start + 1
                    let chunk = try await csv.compute { () -> ByteBuffer? in
                        Self.render(page.results, expected: slice, firstRank: rank)
                    }
                    guard let chunk else {
                        throw BacktestError(.aborted, "batch \(ErrorDocument.bounded(id, 64)) changed while its CSV was written")
                    }
                    try await writer.write(chunk)
                    start += slice.count
                }
                try await writer.finish(nil)
                Self.countsBox.withLock { $0.finished += 1 }
            } catch {
                // The client went away (or the job was evicted): stop; the response is cut short.
                Self.countsBox.withLock { $0.stopped += 1 }
                context.logger.debug("web: CSV of batch \(LogText(id)) stopped: \(error)")
                throw error
            }
        })
    }

    /// The sort value of a finished variant, nil when it failed.
    static func value(_ result: VariantResult, _ metric: BatchMetric) -> Double? {
        guard case .success(let backtest) = result.outcome else { return nil }
        return metric.value(VariantSummary(backtest))
    }

    /// The CSV lines of `results`, which must be the variants `expected` names (nil otherwise:
    /// the job's results moved).
    static func render(_ results: [VariantResult], expected: ArraySlice<Key>, firstRank: Int) -> ByteBuffer? {
        guard results.count == expected.count else { return nil }
        var buffer = ByteBuffer()
        buffer.reserveCapacity(results.count * 256)
        for (offset, (result, key)) in zip(results, expected).enumerated() {
            guard result.index == Int(key.index) else { return nil }
            let label = result.parameters.map { "\($0.path)=\($0.value)" }.joined(separator: ", ")
            let state: BatchRow.State = switch result.outcome {
            case .success(let backtest): .done(VariantSummary(backtest))
            case .failure(let error): .failed(error)
            }
            buffer.writeString(FinalBatchTable.csvLine(rank: firstRank + offset, BatchRow(index: result.index, label: label, state: state)))
            buffer.writeString("\r\n")
        }
        return buffer
    }
}
