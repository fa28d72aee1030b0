import BacktestCore
import BacktestModel

/// Evaluates conditions as whole vectors over the calendar before the portfolio loop runs: one
/// pass per comparison over contiguous arrays instead of a tree walk per bar.
///
/// Every `field` (the path of the operand or condition, for errors) is an autoclosure evaluated
/// only when an error is thrown: a backtest that runs builds no path below its positions.
struct SignalVectors {
    let market: PreparedMarket
    let indicators: IndicatorStore

    /// The operand's values on the calendar (NaN = undefined), `ticker` being the position's.
    func values(_ operand: Operand, ticker: String, field: @autoclosure () -> FieldPath) throws(BacktestError) -> [Double] {
        switch operand {
        case .number(let value):
            return [Double](repeating: value, count: market.dates.count)
        case .series(let series):
            let (aligned, column) = try resolve(series, ticker: ticker, field: field())
            return aligned.align(column)
        }
    }

    /// The operand's value on the calendar's previous trading day (`PreparedMarket.previousDate`),
    /// which crossings on the first simulated day compare with; NaN when unknown.
    func previousValue(_ operand: Operand, ticker: String, field: @autoclosure () -> FieldPath) throws(BacktestError) -> Double {
        switch operand {
        case .number(let value):
            return value
        case .series(let series):
            let (aligned, column) = try resolve(series, ticker: ticker, field: field())
            return aligned.previous(column)
        }
    }

    /// A series operand's ticker on the calendar and its values aligned with the ticker's bars
    /// (a price column, or the indicator series).
    private func resolve(
        _ series: SeriesRef, ticker: String, field: @autoclosure () -> FieldPath
    ) throws(BacktestError) -> (aligned: AlignedTicker, column: [Double]) {
        let symbol = series.ticker ?? ticker
        // `field` is an autoclosure, as are the field arguments below: only an error builds a path
        // (this runs for every operand of every backtest).
        let aligned = try market.ticker(symbol, field: field().series.child("ticker").description)
        switch series.source {
        case .field(let priceField):
            let bars = aligned.bars
            let column: [Double] = switch priceField {
            case .open: bars.open
            case .high: bars.high
            case .low: bars.low
            case .close: bars.close
            case .volume: bars.volume
            }
            return (aligned, column)
        case .indicator(let spec):
            let key = try IndicatorKey(ticker: symbol, spec: spec, field: field().series.child("indicator").description)
            return (aligned, try self.series(for: key))
        }
    }

    /// The stored series, or computed here when the caller did not precompute it.
    func series(for key: IndicatorKey) throws(BacktestError) -> [Double] {
        guard let bars = market.snapshot.bars[key.ticker] else {
            throw BacktestError(.notFound, "no market data for \(key.ticker)")
        }
        guard let stored = indicators[key] else { return IndicatorCalculator.compute(key, bars: bars) }
        guard stored.count == bars.count else {
            throw BacktestError(
                .internal, "indicator series \(key) has \(stored.count) values for \(bars.count) bars")
        }
        return stored
    }

    /// The condition's signal on every calendar day, `ticker` being the position's.
    func evaluate(_ condition: Condition, ticker: String, field: @autoclosure () -> FieldPath) throws(BacktestError) -> SignalBits {
        let count = market.dates.count
        switch condition {
        case .compare(let lhsOperand, let op, let rhsOperand):
            let lhs = try values(lhsOperand, ticker: ticker, field: field().compareOperand(lhs: true))
            let rhs = try values(rhsOperand, ticker: ticker, field: field().compareOperand(lhs: false))
            var previous = (lhs: Double.nan, rhs: Double.nan)
            if op == .crossesAbove || op == .crossesBelow {
                previous = (
                    try previousValue(lhsOperand, ticker: ticker, field: field().compareOperand(lhs: true)),
                    try previousValue(rhsOperand, ticker: ticker, field: field().compareOperand(lhs: false)))
            }
            return lhs.withUnsafeBufferPointer { l in
                rhs.withUnsafeBufferPointer { r in SignalBits.compare(l, op, r, count: count, previous: previous) }
            }
        case .all(let members):
            var result = SignalBits(count: count, value: true)
            for (i, member) in members.enumerated() {
                result = result & (try evaluate(member, ticker: ticker, field: field().member(i, ofAll: true)))
            }
            return result
        case .any(let members):
            var result = SignalBits(count: count)
            for (i, member) in members.enumerated() {
                result = result | (try evaluate(member, ticker: ticker, field: field().member(i, ofAll: false)))
            }
            return result
        case .not(let inner):
            return ~(try evaluate(inner, ticker: ticker, field: field().negated))
        }
    }
}
