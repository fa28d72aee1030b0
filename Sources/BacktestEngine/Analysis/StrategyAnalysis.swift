import BacktestCore
import BacktestModel

/// What a strategy (or every variant of a batch) needs before it can run: the tickers to fetch
/// (always including the benchmark) and the unique indicator series to compute, deduplicated by
/// their canonical key so a series shared by many variants is computed (and cached) once.
package struct StrategyAnalysis: Sendable, Hashable {
    /// Sorted; includes the benchmark.
    package var tickers: [String]
    /// Sorted by ticker, then canonical key.
    package var indicatorKeys: [IndicatorKey]

    /// Throws INVALID_ARGUMENT for an unknown indicator or bad parameters (validate first for the
    /// full set of checks). `fieldPrefix(i)` names strategy `i` in error paths.
    /// Checks `cancellation` per position: CANCELLED once it is set.
    package init(
        strategies: [Strategy], settings: BacktestSettings,
        fieldPrefix: (Int) -> String = { _ in "strategy" }, cancellation: CancellationFlag? = nil
    ) throws(BacktestError) {
        var tickers: Set<String> = [settings.benchmark]
        var keys: Set<IndicatorKey> = []
        for (index, strategy) in strategies.enumerated() {
            let prefix = fieldPrefix(index)
            for (p, position) in strategy.positions.enumerated() {
                try cancellation.check()
                tickers.insert(position.ticker)
                let path = "\(prefix).positions[\(p)]"
                try StrategyAnalysis.collect(position.entry, ticker: position.ticker, field: path + ".entry", tickers: &tickers, keys: &keys)
                if let exit = position.exit {
                    try StrategyAnalysis.collect(exit, ticker: position.ticker, field: path + ".exit", tickers: &tickers, keys: &keys)
                }
                // Stop levels in ATR multiples read ATR(period) of the position's ticker.
                if let period = position.exits.atrPeriod {
                    keys.insert(try IndicatorKey(
                        ticker: position.ticker, spec: IndicatorSpec(type: "atr", params: [Double(period)]),
                        field: path + ".stop_atr_period"))
                }
            }
        }
        self.tickers = tickers.sorted()
        self.indicatorKeys = keys.sorted()
    }

    package init(strategy: Strategy, settings: BacktestSettings, cancellation: CancellationFlag? = nil) throws(BacktestError) {
        try self.init(strategies: [strategy], settings: settings, cancellation: cancellation)
    }

    /// Tickers a single strategy reads (positions and conditions), without the benchmark.
    static func tickers(of strategy: Strategy) -> Set<String> {
        var tickers: Set<String> = []
        var keys: Set<IndicatorKey> = []
        for position in strategy.positions {
            tickers.insert(position.ticker)
            try? collect(position.entry, ticker: position.ticker, field: "", tickers: &tickers, keys: &keys)
            if let exit = position.exit {
                try? collect(exit, ticker: position.ticker, field: "", tickers: &tickers, keys: &keys)
            }
        }
        return tickers
    }

    private static func collect(
        _ condition: Condition, ticker: String, field: String, tickers: inout Set<String>, keys: inout Set<IndicatorKey>
    ) throws(BacktestError) {
        func operand(_ operand: Operand, _ path: String) throws(BacktestError) {
            guard case .series(let series) = operand else { return }
            let symbol = series.ticker ?? ticker
            tickers.insert(symbol)
            if case .indicator(let spec) = series.source {
                keys.insert(try IndicatorKey(ticker: symbol, spec: spec, field: path + ".indicator"))
            }
        }
        switch condition {
        case .compare(let lhs, _, let rhs):
            try operand(lhs, field + ".lhs")
            try operand(rhs, field + ".rhs")
        case .all(let members):
            for (i, member) in members.enumerated() {
                try collect(member, ticker: ticker, field: "\(field).all[\(i)]", tickers: &tickers, keys: &keys)
            }
        case .any(let members):
            for (i, member) in members.enumerated() {
                try collect(member, ticker: ticker, field: "\(field).any[\(i)]", tickers: &tickers, keys: &keys)
            }
        case .not(let inner):
            try collect(inner, ticker: ticker, field: field + ".not", tickers: &tickers, keys: &keys)
        }
    }
}
