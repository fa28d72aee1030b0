import BacktestClient
import BacktestCore
import BacktestModel
import BacktestTestSupport
import Foundation
import Testing

/// Issue 11's lost-results case over a real connection: a 2,000-variant batch over 20 years
/// whose client disconnects after its first 3 results. A new connection re-attaches with
/// GetBatchStatus and reads every summary, each exactly once (before issue 11 the finished job
/// alone was over the retention bound and every result was lost to a misleading NOT_FOUND).
@Suite("2,000-variant batch re-attached over TCP", .serialized, .timeLimit(.minutes(5)))
struct SweepReattachOverTCPTests {
    static let base = Strategy(name: "cross", positions: [Position(
        ticker: "AAPL", weight: 1,
        entry: .compare(lhs: .series(SeriesRef(source: .indicator(IndicatorSpec(type: "sma", params: [5])))), op: .greater,
                        rhs: .series(SeriesRef(source: .indicator(IndicatorSpec(type: "sma", params: [110]))))))])
    /// 40 x 50 = 2,000 variants over 20 years.
    static let grid = Grid(base: base, axes: [
        GridAxis(path: "positions[0].entry.lhs", range: "sma:5..44"),
        GridAxis(path: "positions[0].entry.rhs", range: "sma:110..159"),
    ])
    static let settings = BacktestSettings(start: TradingDate(iso: "2000-01-03")!, end: TradingDate(iso: "2019-12-31")!)

    @Test func disconnectAfterThreeResultsThenReadEverySummary() async throws {
        let daemon = try await SpawnedDaemon(owner: "SweepReattachOverTCPTests")
        defer { daemon.stop() }
        let client = BacktestClient(host: "127.0.0.1", port: daemon.port)
        var batchID = ""
        var seen = 0
        // A disconnect, not a CANCEL: leaving the loop would cancel the call (the client sends
        // CANCEL when its consumer stops), so the connection is closed under the running stream.
        do {
            for try await update in client.runSweep(Self.grid, settings: Self.settings, reattach: .disabled) {
                batchID = update.batchID
                seen += update.results.count
                if seen >= 3 { await client.close() }
            }
        } catch {
            // The stream ends with the connection.
        }
        #expect(batchID.count == 32)

        let reader = BacktestClient(host: "127.0.0.1", port: daemon.port)
        defer { Task { await reader.close() } }
        var known = Set<Int>()
        var summaries = 0
        let deadline = ContinuousClock.now + .seconds(180)
        while ContinuousClock.now < deadline {
            let status = try await reader.batchStatus(id: batchID, knownIndices: Array(known))
            for result in status.results {
                #expect(!known.contains(result.index), "variant \(result.index) twice")
                known.insert(result.index)
                if case .summary = result.detail { summaries += 1 }
                #expect(result.parameters.count == 2)
            }
            if status.state == .final, known.count >= status.completed { break }
            #expect(status.state == .partial || status.state == .final, "\(status.state)")
            if status.results.isEmpty { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(known == Set(0..<2000))
        #expect(summaries == 2000)
    }

    /// The neighbour: a CANCEL (the consumer leaves the stream) stops the sweep, and the batch
    /// then reads CANCELLED with what finished, never FINAL with variants missing.
    @Test func aCancelledSweepEndsCancelledNotFinal() async throws {
        let daemon = try await SpawnedDaemon(owner: "SweepReattachOverTCPTests")
        defer { daemon.stop() }
        let client = BacktestClient(host: "127.0.0.1", port: daemon.port)
        var batchID = ""
        var seen = 0
        for try await update in client.runSweep(Self.grid, settings: Self.settings, reattach: .disabled) {
            batchID = update.batchID
            seen += update.results.count
            if seen >= 3 { break }
        }
        let reader = BacktestClient(host: "127.0.0.1", port: daemon.port)
        defer { Task { await client.close(); await reader.close() } }
        let deadline = ContinuousClock.now + .seconds(120)
        var status = try await reader.batchStatus(id: batchID)
        while status.state == .partial, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
            status = try await reader.batchStatus(id: batchID)
        }
        if status.state == .final {
            #expect(status.completed == 2000, "FINAL with \(status.completed) of 2000 variants")
        } else {
            #expect(status.state == .cancelled, "\(status.state)")
        }
        #expect(status.results.count == status.completed)
    }
}
