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
            guard position.weight.isFinite, position.weight > 0, position.weight <= 1 else {
                throw .invalidArgument("weight must be in (0, 1], got \(position.weight)", field: positionPath + ".weight")
            }
            totalWeight += position.weight
            try validate(position.entry, field: positionPath + ".entry")
            if let exit = position.exit { try validate(exit, field: positionPath + ".exit") }
        }
        if !strategy.allowLeverage && totalWeight > 1 + 1e-9 {
            throw .invalidArgument(
                "position weights sum to \(totalWeight), above 1; set allow_leverage to buy on margin",
                field: path + ".positions")
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
