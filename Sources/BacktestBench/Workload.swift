import BacktestCore
import BacktestModel

/// The requests `backtest-bench bench` and `backtest-bench loadtest` send: SMA-crossover portfolios over
/// liquid large caps from ../shared/market-data/daily, benchmarked against SPY.
///
/// Periods end on the last shared trading day (2020-08-28), so every bar is older than T-2 and
/// the whole history is cacheable; "N years" starts N calendar years earlier. Every position
/// gets weight 1/N, enters while SMA(fast) > SMA(slow) and leaves when that turns false.
package enum Workload {
    /// Ten tickers with full history over 2015-2020; the 1- and 5-ticker cases take a prefix.
    package static let tickers = ["AAPL", "MSFT", "JPM", "JNJ", "PG", "KO", "INTC", "CSCO", "WMT", "XOM"]
    package static let end = TradingDate(year: 2020, month: 8, day: 28)!

    package static func settings(years: Int) -> BacktestSettings {
        let start = TradingDate(year: end.year - years, month: end.month, day: end.day)!
        return BacktestSettings(start: start, end: end, initialCapital: 100_000, adjustment: .split, benchmark: "SPY")
    }

    package static func strategy(tickers count: Int, fast: Int = 50, slow: Int = 200) -> Strategy {
        let chosen = Array(tickers.prefix(max(1, min(count, tickers.count))))
        return Strategy(
            name: "sma \(fast)/\(slow) x \(chosen.count)",
            positions: chosen.map { ticker in
                Position(ticker: ticker, weight: 1 / Double(chosen.count),
                         entry: .compare(lhs: sma(fast), op: .greater, rhs: sma(slow)))
            },
            fill: .nextOpen, commissionBps: 1, slippageBps: 2)
    }

    /// `count` variants of the crossover, fast in 5, 10, ... 50 and slow in 100, 150, ... 300,
    /// taken round-robin so that small batches already span both parameters (at most 50).
    package static func variants(_ requested: Int, tickers: Int) -> [Strategy] {
        let fasts = stride(from: 5, through: 50, by: 5).map { $0 }
        let slows = stride(from: 100, through: 300, by: 50).map { $0 }
        let count = min(requested, fasts.count * slows.count)
        var result: [Strategy] = []
        var index = 0
        while result.count < count {
            let fast = fasts[index % fasts.count]
            let slow = slows[(index / fasts.count + index) % slows.count]
            let candidate = strategy(tickers: tickers, fast: fast, slow: slow)
            if !result.contains(where: { $0.name == candidate.name }) { result.append(candidate) }
            index += 1
        }
        return result
    }

    static func sma(_ period: Int) -> Operand {
        .series(SeriesRef(source: .indicator(IndicatorSpec(type: "sma", params: [Double(period)]))))
    }
}

/// One request of a load test or benchmark: a single backtest or a batch.
package enum BenchRequest: Sendable, Hashable {
    case single(Strategy, BacktestSettings)
    case batch([Strategy], BacktestSettings)

    package var kind: RequestKind {
        switch self {
        case .single: .single
        case .batch: .batch
        }
    }
}

package enum RequestKind: String, Sendable, Hashable, CaseIterable, Codable {
    case single, batch
}
