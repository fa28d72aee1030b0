import BacktestCore
import BacktestModel

/// Rejects what cannot be backtested with INVALID_ARGUMENT naming the field by its proto path
/// (`FieldPath`): "strategy.positions[1].weight", "settings.end_date",
/// "strategy.positions[0].entry.compare.lhs.series.indicator.params[0]". Paths start at the roots
/// given (`strategy` and `settings` by default; the service passes the call's own, e.g.
/// `run_batch.variants[3]` and `run_batch.settings`).
/// Runs before any data is fetched, once per strategy: the service validates each variant once and
/// hands the engines only validated strategies (`BacktestRunner.run(validated:market:indicators:)`);
/// the engines' stand-alone entry points validate for callers that have not.
package enum Validation {
    package static func validate(
        _ strategy: Strategy, settings: BacktestSettings, path: FieldPath = .strategy, settingsPath: FieldPath = .settings
    ) throws(BacktestError) {
        try validate(settings, path: settingsPath)
        try validate(strategy, path: path)
    }

    package static func validate(_ settings: BacktestSettings, path: FieldPath = .settings) throws(BacktestError) {
        guard settings.start <= settings.end else {
            throw .invalidArgument("end date \(settings.end) is before start date \(settings.start)", at: path.child("end_date"))
        }
        guard settings.initialCapital.isFinite, settings.initialCapital > 0 else {
            throw .invalidArgument(
                "initial capital must be a positive amount (0 = 100000), got \(settings.initialCapital)",
                at: path.child("initial_capital"))
        }
        try Ticker.validate(settings.benchmark, field: path.child("benchmark").description)
    }

    package static func validate(_ strategy: Strategy, path: FieldPath = .strategy) throws(BacktestError) {
        guard !strategy.positions.isEmpty else {
            throw .invalidArgument("a strategy needs at least one position", at: path.child("positions"))
        }
        for (name, value) in [("commission_bps", strategy.commissionBps), ("slippage_bps", strategy.slippageBps)] {
            guard value.isFinite, value >= 0, value < 10_000 else {
                throw .invalidArgument("\(name) must be in [0, 10000) basis points, got \(value)", at: path.child(name))
            }
        }
        var totalWeight = 0.0
        for (p, position) in strategy.positions.enumerated() {
            let positionPath = path.position(p)
            try Ticker.validate(position.ticker, field: positionPath.child("ticker").description)
            guard position.weight.isFinite, position.weight > 0, position.weight <= 1 else {
                throw .invalidArgument("weight must be in (0, 1], got \(position.weight)", at: positionPath.child("weight"))
            }
            totalWeight += position.weight
            try validate(position.entry, path: positionPath.child("entry"))
            if let exit = position.exit { try validate(exit, path: positionPath.child("exit")) }
        }
        if !strategy.allowLeverage && totalWeight > 1 + 1e-9 {
            throw .invalidArgument(
                "position weights sum to \(totalWeight), above 1; set allow_leverage to buy on margin",
                at: path.child("positions"))
        }
    }

    /// The deepest nesting of conditions accepted: a position's `entry` is level 1, each `all`,
    /// `any` or `not` inside adds one. The wire decoder enforces the same bound before protobuf-c
    /// unpacks (PROTOCOL.md, "Limits").
    package static let maxConditionDepth = 48

    static func validate(_ condition: Condition, path: FieldPath, depth: Int = 1) throws(BacktestError) {
        guard depth <= maxConditionDepth else {
            throw .invalidArgument("conditions nest deeper than \(maxConditionDepth) levels", at: path)
        }
        switch condition {
        case .compare(let lhs, _, let rhs):
            if case .number = lhs, case .number = rhs {
                throw .invalidArgument("a comparison needs at least one series (price field or indicator)", at: path.child("compare"))
            }
            try validate(lhs, path: path.compareOperand(lhs: true))
            try validate(rhs, path: path.compareOperand(lhs: false))
        case .all(let members), .any(let members):
            let isAll = if case .all = condition { true } else { false }
            guard !members.isEmpty else {
                throw .invalidArgument(
                    "'\(isAll ? "all" : "any")' needs at least one condition",
                    at: path.child(isAll ? "all" : "any").child("conditions"))
            }
            for (i, member) in members.enumerated() {
                try validate(member, path: path.member(i, ofAll: isAll), depth: depth + 1)
            }
        case .not(let inner):
            try validate(inner, path: path.negated, depth: depth + 1)
        }
    }

    static func validate(_ operand: Operand, path: FieldPath) throws(BacktestError) {
        switch operand {
        case .number(let value):
            guard value.isFinite else { throw .invalidArgument("number must be finite, got \(value)", at: path.child("number")) }
        case .series(let series):
            if let ticker = series.ticker { try Ticker.validate(ticker, field: path.series.child("ticker").description) }
            if case .indicator(let spec) = series.source {
                let indicatorPath = path.series.child("indicator")
                try IndicatorCatalog.requireParameters(spec, field: indicatorPath.description)
                _ = try IndicatorCatalog.normalize(spec, field: indicatorPath.description)
            }
        }
    }

}
