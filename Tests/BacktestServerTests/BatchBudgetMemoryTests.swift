import BacktestClient
import BacktestCore
import BacktestModel
import BacktestTestSupport
import Foundation
import Synchronization
import Testing

/// The batch memory budget measured (issue 11 item 5): a spawned backtestd with a small budget
/// gets 64 FULL batches of 40 variants over 20 years (about 5.8 MB of results each by the
/// server's estimate, 370 MB together) on one connection, which then disconnects. What fits runs,
/// a few wait in the admission queue, the rest are refused at once with RESOURCE_EXHAUSTED naming
/// the budget, and the server's peak resident memory (VmHWM) stays near its budget instead of
/// growing with every batch sent.
@Suite("Batch memory budget, measured RSS", .serialized, .timeLimit(.minutes(5)))
struct BatchBudgetMemoryTests {
    static let twentyYears = BacktestSettings(start: TradingDate(iso: "2000-01-03")!, end: TradingDate(iso: "2019-12-31")!)

    static func variants(_ seed: Int) -> [Strategy] {
        (0..<40).map { i in
            Strategy(name: "b\(seed)-v\(i)", positions: [Position(
                ticker: "AAPL", weight: 1,
                entry: .compare(lhs: .series(SeriesRef(source: .indicator(IndicatorSpec(type: "sma", params: [Double(5 + i)])))), op: .greater,
                                rhs: .series(SeriesRef(source: .indicator(IndicatorSpec(type: "sma", params: [Double(100 + seed % 8)]))))))])
        }
    }

    @Test func sixtyFourFullBatchesOnOneConnectionStayWithinTheBudget() async throws {
        let budgetMB = 16
        let daemon = try await SpawnedDaemon(
            arguments: ["--batch-budget-mb", "\(budgetMB)", "--batch-queue", "4", "--batch-retention-mb", "8", "--max-parallel", "2"],
            owner: "BatchBudgetMemoryTests")
        defer { daemon.stop() }
        let idle = try #require(daemon.status("VmRSS"))

        let client = BacktestClient(host: "127.0.0.1", port: daemon.port)
        let tally = Tally<BacktestError>()
        var tasks: [Task<Void, Never>] = []
        for seed in 0..<64 {
            let stream = client.runBatch(Self.variants(seed), settings: Self.twentyYears, timeout: .seconds(120),
                                         reattach: .disabled, onBatchID: { id in tally.ids.withLock { $0.append(id) } })
            tasks.append(Task {
                do {
                    for try await _ in stream {}
                } catch let error as BacktestError {
                    if error.code == .resourceExhausted { tally.refusals.withLock { $0.append(error) } }
                } catch {}
            })
        }
        // Every batch is admitted, waiting, or refused: the refusals come at once.
        let deadline = ContinuousClock.now + .seconds(60)
        while tally.ids.withLock({ $0.count }) + tally.refusals.withLock({ $0.count }) < 64 - 4, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let refused = tally.refusals.withLock { $0 }
        let admitted = tally.ids.withLock { $0 }
        #expect(!refused.isEmpty)
        #expect(refused.allSatisfy { $0.field == "run_batch" && $0.message.contains("batch memory budget of \(budgetMB) MB") },
                "\(refused.first.map(\.message) ?? "")")
        #expect(admitted.count + refused.count >= 60, "admitted \(admitted.count), refused \(refused.count)")
        // The client goes away; what was admitted runs on, what waited never starts.
        await client.close()
        for task in tasks { task.cancel() }
        // Wait (bounded) until every admitted batch ended, reading each as a re-attaching client would.
        let reader = BacktestClient(host: "127.0.0.1", port: daemon.port)
        defer { Task { await reader.close() } }
        for id in tally.ids.withLock({ $0 }) {
            while ContinuousClock.now < deadline + .seconds(120) {
                guard let status = try? await reader.batchStatus(id: id, knownIndices: Array(0..<40)) else { break }
                if status.state != .partial { break }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        let peak = try #require(daemon.status("VmHWM"))
        let now = try #require(daemon.status("VmRSS"))
        print("BatchBudgetMemoryTests: \(tally.ids.withLock { $0.count }) batches admitted, \(refused.count) refused at once; "
              + "server RSS idle \(idle / 1024) MiB, peak (VmHWM) \(peak / 1024) MiB, after \(now / 1024) MiB; budget \(budgetMB) MB")
        // The 64 batches' results alone are about 370 MB; with the budget the server's peak stays
        // within a small multiple of the budget above its idle size (a debug build).
        #expect(peak - idle < 6 * budgetMB * 1024, "peak \(peak / 1024) MiB, idle \(idle / 1024) MiB")
    }
}

/// Batch ids announced and refusals received, from the streams' tasks.
final class Tally<Refusal: Sendable>: Sendable {
    let ids = Mutex<[String]>([])
    let refusals = Mutex<[Refusal]>([])
}
