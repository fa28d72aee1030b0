import BacktestCore
import BacktestModel
import Testing

@testable import BacktestEngine

@Suite("Metrics beyond the reference file")
struct MetricsTests {
    @Test("trade metrics agree with the reference orders")
    func tradeMetrics() throws {
        for reference in try ReferenceBacktest.all() {
            let snapshot = try reference.snapshot()
            let result = try VectorEngine().run(reference.file.strategy, settings: reference.settings, snapshot: snapshot, indicators: IndicatorStore())
            let orders = reference.expected.orders
            var profits: [Double] = []
            var buys = 0
            var cost = 0.0
            for order in orders {
                if order.side == "buy" {
                    buys += 1
                    cost = order.quantity * order.price + order.commission
                } else {
                    profits.append(order.quantity * order.price - order.commission - cost)
                }
            }
            let wins = profits.filter { $0 > 0 }
            let losses = profits.filter { $0 < 0 }
            // Trade count = closed round trips (a position still open at the end is not one).
            #expect(buys >= profits.count)
            #expect(result.metrics.tradeCount == profits.count, "\(reference.id)")
            #expect(TestData.close(result.metrics.winRate, Double(wins.count) / Double(profits.count), tolerance: 1e-12))
            #expect(TestData.close(result.metrics.profitFactor, wins.reduce(0, +) / -losses.reduce(0, +), tolerance: 1e-6))
        }
    }

    @Test("drawdown duration and exposure from their definitions")
    func drawdownAndExposure() throws {
        let reference = try #require(try ReferenceBacktest.all().first { $0.id == "rsi14_XOM_next_open" })
        let result = try VectorEngine().run(reference.file.strategy, settings: reference.settings, snapshot: try reference.snapshot(), indicators: IndicatorStore())
        let equity = reference.expected.equity
        // Brute force: the deepest point, its preceding peak, the first recovery after it.
        var worst = 0.0
        var trough = 0
        for t in equity.indices {
            let drawdown = equity[t] / equity[...t].max()! - 1
            if drawdown < worst { worst = drawdown; trough = t }
        }
        let peakValue = equity[...trough].max()!
        let peak = equity[...trough].lastIndex(of: peakValue)!
        let recovery = equity[trough...].firstIndex { $0 >= peakValue } ?? equity.count - 1
        #expect(result.metrics.maxDrawdownDuration == recovery - peak)
        // Exposure: days ending with shares held, from the reference orders.
        var held = 0
        var holding = false
        var next = 0
        for date in reference.expected.dates {
            while next < reference.expected.orders.count && reference.expected.orders[next].date == date {
                holding = reference.expected.orders[next].side == "buy"
                next += 1
            }
            if holding { held += 1 }
        }
        #expect(TestData.close(result.metrics.exposure, Double(held) / Double(equity.count), tolerance: 1e-12))
    }

    @Test("the benchmark measured against itself: beta 1, alpha 0, no closed trade")
    func benchmarkMetrics() throws {
        let reference = try #require(try ReferenceBacktest.all().first)
        let result = try VectorEngine().run(reference.file.strategy, settings: reference.settings, snapshot: try reference.snapshot(), indicators: IndicatorStore())
        let b = result.benchmarkMetrics
        #expect(TestData.close(b.beta, 1, tolerance: 1e-12))
        #expect(abs(b.alpha) < 1e-12)
        #expect(TestData.close(b.totalReturn, reference.expected.benchmark.last! / reference.expected.benchmark.first! - 1, tolerance: 1e-9))
        // Buy and hold never closes a round trip: trade count 0, win rate and profit factor undefined.
        #expect(b.tradeCount == 0 && b.exposure == 1)
        #expect(b.winRate.isNaN && b.profitFactor.isNaN)
        #expect(b.maxDrawdown < -0.4)  // 2008
    }
}
