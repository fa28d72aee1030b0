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
        fieldPrefix: (Int) -> FieldPath = { _ in .strategy }, cancellation: CancellationFlag? = nil
    ) throws(BacktestError) {
        var tickers: Set<String> = [settings.benchmark]
        var keys: Set<IndicatorKey> = []
        for (index, strategy) in strategies.enumerated() {
            let prefix = fieldPrefix(index)
            for (p, position) in strategy.positions.enumerated() {
                try cancellation.check()
                _ = try Self.collect(position, at: p, root: prefix, tickers: &tickers, keys: &keys)
            }
        }
        self.tickers = tickers.sorted()
        self.indicatorKeys = keys.sorted()
    }

    /// Adds the tickers and indicator series position `p` (of the strategy at `root`) reads to
    /// `tickers` and `keys`; returns whether any was not there yet. Throws what
    /// `init(strategies:settings:fieldPrefix:cancellation:)` throws for that position.
    package static func collect(
        _ position: Position, at p: Int, root: FieldPath, tickers: inout Set<String>, keys: inout Set<IndicatorKey>
    ) throws(BacktestError) -> Bool {
        let before = (tickers.count, keys.count)
        tickers.insert(position.ticker)
        // Paths are built only for an error (this runs for every position of every strategy).
        try collect(position.entry, ticker: position.ticker, field: { root.position(p).child("entry") }, tickers: &tickers, keys: &keys)
        if let exit = position.exit {
            try collect(exit, ticker: position.ticker, field: { root.position(p).child("exit") }, tickers: &tickers, keys: &keys)
        }
        // Stop levels in ATR multiples read ATR(period) of the position's ticker.
        if let period = position.exits.atrPeriod {
            keys.insert(try IndicatorKey(
                ticker: position.ticker, spec: IndicatorSpec(type: "atr", params: [Double(period)]),
                field: root.position(p).child("stop_atr_period").description))
        }
        return (tickers.count, keys.count) != before
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
            try? collect(position.entry, ticker: position.ticker, field: { "" }, tickers: &tickers, keys: &keys)
            if let exit = position.exit {
                try? collect(exit, ticker: position.ticker, field: { "" }, tickers: &tickers, keys: &keys)
            }
        }
        return tickers
    }

    /// NOT_FOUND "no market data for X" naming where `strategy` (under `root`) first reads X
    /// (`firstPath(of:in:root:)`), X being the first, in sorted order, of the tickers it reads
    /// that `hasData` says the data layer has no bars for at all; nil when every one has data.
    /// A ticker with data only outside the window is not unknown: the engine's missing-bar policy
    /// applies (the position never trades, a warning says why).
    package static func unknownTickerError(
        in strategy: Strategy, root: FieldPath, hasData: (String) -> Bool
    ) -> BacktestError? {
        guard let symbol = tickers(of: strategy).filter({ !hasData($0) }).min() else { return nil }
        let field = firstPath(of: symbol, in: strategy, root: root) ?? root
        return BacktestError(.notFound, "no market data for \(symbol)", field: field.description)
    }

    /// Where `symbol` first appears in `strategy` (under `root`): a position's `ticker`, else the
    /// `series.ticker` of the first condition operand naming it; nil when it does not.
    package static func firstPath(of symbol: String, in strategy: Strategy, root: FieldPath = .strategy) -> FieldPath? {
        if let p = strategy.positions.firstIndex(where: { $0.ticker == symbol }) {
            return root.position(p).child("ticker")
        }
        func find(_ condition: Condition, _ path: FieldPath) -> FieldPath? {
            switch condition {
            case .compare(let lhs, _, let rhs):
                for (operand, isLHS) in [(lhs, true), (rhs, false)] {
                    if case .series(let series) = operand, series.ticker == symbol {
                        return path.compareOperand(lhs: isLHS).series.child("ticker")
                    }
                }
                return nil
            case .all(let members), .any(let members):
                let isAll = if case .all = condition { true } else { false }
                for (i, member) in members.enumerated() {
                    if let found = find(member, path.member(i, ofAll: isAll)) { return found }
                }
                return nil
            case .not(let inner):
                return find(inner, path.negated)
            }
        }
        for (p, position) in strategy.positions.enumerated() {
            if let found = find(position.entry, root.position(p).child("entry")) { return found }
            if let exit = position.exit, let found = find(exit, root.position(p).child("exit")) { return found }
        }
        return nil
    }

    /// `field` names `condition`; it is called only to name the field of an error. `tickers`
    /// must hold `ticker` (the position's) already.
    private static func collect(
        _ condition: Condition, ticker: String, field: () -> FieldPath, tickers: inout Set<String>, keys: inout Set<IndicatorKey>
    ) throws(BacktestError) {
        func operand(_ operand: Operand, _ path: () -> FieldPath) throws(BacktestError) {
            guard case .series(let series) = operand else { return }
            // A series without its own ticker reads the position's, which is in `tickers`.
            if let symbol = series.ticker { tickers.insert(symbol) }
            if case .indicator(let spec) = series.source {
                keys.insert(try IndicatorKey(ticker: series.ticker ?? ticker, spec: spec, field: path().series.child("indicator").description))
            }
        }
        switch condition {
        case .compare(let lhs, _, let rhs):
            try operand(lhs, { field().compareOperand(lhs: true) })
            try operand(rhs, { field().compareOperand(lhs: false) })
        case .all(let members):
            for (i, member) in members.enumerated() {
                try collect(member, ticker: ticker, field: { field().member(i, ofAll: true) }, tickers: &tickers, keys: &keys)
            }
        case .any(let members):
            for (i, member) in members.enumerated() {
                try collect(member, ticker: ticker, field: { field().member(i, ofAll: false) }, tickers: &tickers, keys: &keys)
            }
        case .not(let inner):
            try collect(inner, ticker: ticker, field: { field().negated }, tickers: &tickers, keys: &keys)
        }
    }
}
