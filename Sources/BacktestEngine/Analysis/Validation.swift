import BacktestCore
import BacktestModel

/// Rejects what cannot be backtested with INVALID_ARGUMENT naming the field, in proto field
/// names: "strategy.positions[1].weight", "strategy.commission_bps", "settings.end_date", ...
/// Runs before any data is fetched, once per strategy: the service validates each variant once and
/// hands the engines only validated strategies (`BacktestRunner.run(validated:market:indicators:)`);
/// the engines' stand-alone entry points validate for callers that have not.
package enum Validation {
    /// `path` names the strategy in messages: "strategy" for a single backtest, "variants[3]" in a
    /// batch.
    package static func validate(_ strategy: Strategy, settings: BacktestSettings, path: String = "strategy") throws(BacktestError) {
        try validate(settings)
        try validate(strategy, path: path)
        // Sizing that the account cannot fill (only the capital is known before the run).
        if !strategy.allowLeverage {
            var committed = 0.0
            for (p, position) in strategy.positions.enumerated() where position.sizing == .cash {
                committed += position.size
                guard committed <= settings.initialCapital * (1 + 1e-12) else {
                    throw .invalidArgument(
                        "cash sizes sum to \(committed), above the initial capital \(settings.initialCapital); set allow_leverage to buy on margin",
                        field: "\(path).positions[\(p)].size")
                }
            }
        }
    }

    package static func validate(_ settings: BacktestSettings) throws(BacktestError) {
        guard settings.start <= settings.end else {
            throw .invalidArgument("end date \(settings.end) is before start date \(settings.start)", field: "settings.end_date")
        }
        guard settings.initialCapital.isFinite, settings.initialCapital > 0 else {
            throw .invalidArgument("initial capital must be a positive amount, got \(settings.initialCapital)", field: "settings.initial_capital")
        }
        try Ticker.validate(settings.benchmark, field: "settings.benchmark")
    }

    /// Checks `cancellation` per position (a strategy may have 100,000): CANCELLED once it is set.
    package static func validate(
        _ strategy: Strategy, path: String = "strategy", cancellation: CancellationFlag? = nil
    ) throws(BacktestError) {
        guard !strategy.positions.isEmpty else {
            throw .invalidArgument("a strategy needs at least one position", field: path + ".positions")
        }
        for (name, value) in [("commission_bps", strategy.commissionBps), ("slippage_bps", strategy.slippageBps)] {
            guard value.isFinite, value >= 0, value < 10_000 else {
                throw .invalidArgument("\(name) must be in [0, 10000) basis points, got \(value)", field: "\(path).\(name)")
            }
        }
        var totalWeight = 0.0
        for (p, position) in strategy.positions.enumerated() {
            try cancellation.check()
            let positionPath = "\(path).positions[\(p)]"
            try Ticker.validate(position.ticker, field: positionPath + ".ticker")
            // The weight sizes (and rebalances) weight-sized positions only; other sizings ignore it.
            if position.sizing == .weight {
                guard position.weight.isFinite, position.weight > 0, position.weight <= 1 else {
                    throw .invalidArgument("weight must be in (0, 1], got \(position.weight)", field: positionPath + ".weight")
                }
                totalWeight += position.weight
            }
            if !position.isPlain { try validateSizingAndExits(position, path: positionPath) }
            try validate(position.entry, field: positionPath + ".entry")
            if let exit = position.exit { try validate(exit, field: positionPath + ".exit") }
        }
        if !strategy.allowLeverage && totalWeight > 1 + 1e-9 {
            throw .invalidArgument(
                "position weights sum to \(totalWeight), above 1; set allow_leverage to buy on margin",
                field: path + ".positions")
        }
    }

    /// Issue 15's fields of one position: sizing, stop levels, ATR period and time exit.
    static func validateSizingAndExits(_ position: Position, path: String) throws(BacktestError) {
        let exits = position.exits
        switch position.sizing {
        case .weight: break
        case .cash, .shares:
            guard position.size.isFinite, position.size > 0 else {
                throw .invalidArgument("size must be a positive \(position.sizing == .cash ? "cash amount" : "share count") for sizing \(position.sizing.rawValue), got \(position.size)", field: path + ".size")
            }
        case .risk:
            guard position.size.isFinite, position.size > 0, position.size <= 1 else {
                throw .invalidArgument("size must be the fraction of equity risked, in (0, 1], got \(position.size)", field: path + ".size")
            }
            guard exits.stopLoss != nil else {
                throw .invalidArgument("risk sizing needs a stop_loss (the risk is the distance to it)", field: path + ".stop_loss")
            }
        }
        // A fraction of the entry price at or above 1 puts a long's stop (a short's target) at or
        // below zero: it can never be reached.
        let fractions = exits.atrPeriod == nil
        for (name, value, boundedForLong) in [
            ("stop_loss", exits.stopLoss, position.direction == .long), ("take_profit", exits.takeProfit, position.direction == .short),
            ("trailing_stop", exits.trailingStop, position.direction == .long),
        ] {
            guard let value else { continue }
            guard value.isFinite, value > 0 else {
                throw .invalidArgument("\(name) must be a positive distance, got \(value)", field: "\(path).\(name)")
            }
            if fractions && boundedForLong && value >= 1 {
                throw .invalidArgument(
                    "\(name) must be below 1 (a fraction of the entry price) for a \(position.direction.rawValue) position, got \(value)",
                    field: "\(path).\(name)")
            }
        }
        if let period = exits.atrPeriod {
            guard (1...10_000).contains(period) else {
                throw .invalidArgument("stop_atr_period must be in 1...10000 bars, got \(period)", field: path + ".stop_atr_period")
            }
            guard exits.hasPriceLevel else {
                throw .invalidArgument("stop_atr_period needs a stop_loss, take_profit or trailing_stop", field: path + ".stop_atr_period")
            }
        }
        if let bars = exits.maxBars, bars < 1 {
            throw .invalidArgument("max_bars must be at least 1, got \(bars)", field: path + ".max_bars")
        }
    }

    static func validate(_ condition: Condition, field: String) throws(BacktestError) {
        switch condition {
        case .compare(let lhs, _, let rhs):
            if case .number = lhs, case .number = rhs {
                throw .invalidArgument("a comparison needs at least one series (price field or indicator)", field: field)
            }
            try validate(lhs, field: field + ".lhs")
            try validate(rhs, field: field + ".rhs")
        case .all(let members), .any(let members):
            let kind = if case .all = condition { "all" } else { "any" }
            guard !members.isEmpty else {
                throw .invalidArgument("'\(kind)' needs at least one condition", field: "\(field).\(kind)")
            }
            for (i, member) in members.enumerated() { try validate(member, field: "\(field).\(kind)[\(i)]") }
        case .not(let inner):
            try validate(inner, field: field + ".not")
        }
    }

    static func validate(_ operand: Operand, field: String) throws(BacktestError) {
        switch operand {
        case .number(let value):
            guard value.isFinite else { throw .invalidArgument("number must be finite, got \(value)", field: field) }
        case .series(let series):
            if let ticker = series.ticker { try Ticker.validate(ticker, field: field + ".ticker") }
            if case .indicator(let spec) = series.source {
                _ = try IndicatorCatalog.normalize(spec, field: field + ".indicator")
            }
        }
    }
}
