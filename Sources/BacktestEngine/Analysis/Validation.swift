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
        try validateCashSizing(strategy, settings: settings, path: path)
    }

    /// Most an amount may be: `initial_capital` and a cash or shares `size` (PROTOCOL.md §6).
    /// Far above any account, far below where equity × price products overflow a Double.
    package static let maxAmount = 1e12

    /// Cash sizing the account cannot fill without leverage (only the capital is known before the
    /// run): cash sizes summing above `settings.initialCapital` when `allow_leverage` is off are
    /// INVALID_ARGUMENT naming the `size` where the sum first exceeds it. `strategy` and
    /// `settings` must each be valid already (`validate(_:path:cancellation:)`, `validate(_:path:)`).
    package static func validateCashSizing(_ strategy: Strategy, settings: BacktestSettings, path: FieldPath = .strategy) throws(BacktestError) {
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

    package static func validate(_ settings: BacktestSettings, path: FieldPath = .settings) throws(BacktestError) {
        guard settings.start <= settings.end else {
            throw .invalidArgument("end date \(settings.end) is before start date \(settings.start)", at: path.child("end_date"))
        }
        guard settings.initialCapital.isFinite, settings.initialCapital > 0 else {
            throw .invalidArgument(
                "initial capital must be a positive amount (0 = 100000), got \(settings.initialCapital)",
                at: path.child("initial_capital"))
        }
        guard settings.initialCapital <= maxAmount else {
            throw .invalidArgument(
                "initial capital must be at most 1e12, got \(settings.initialCapital)", at: path.child("initial_capital"))
        }
        try Ticker.validate(settings.benchmark, field: path.child("benchmark").description)
    }

    /// Checks `cancellation` per position (a strategy may have 100,000): CANCELLED once it is set.
    package static func validate(
        _ strategy: Strategy, path: FieldPath = .strategy, cancellation: CancellationFlag? = nil
    ) throws(BacktestError) {
        try validateFields(strategy, path: path)
        var totalWeight = 0.0
        for (p, position) in strategy.positions.enumerated() {
            try cancellation.check()
            try validate(position, at: p, path: path)
            if position.sizing == .weight { totalWeight += position.weight }
        }
        if !strategy.allowLeverage && totalWeight > 1 + 1e-9 {
            throw .invalidArgument(
                "position weights sum to \(totalWeight), above 1; set allow_leverage to buy on margin",
                at: path.child("positions"))
        }
    }

    /// The strategy's own fields: at least one position, commission and slippage. Part of
    /// `validate(_:path:cancellation:)`.
    package static func validateFields(_ strategy: Strategy, path: FieldPath = .strategy) throws(BacktestError) {
        guard !strategy.positions.isEmpty else {
            throw .invalidArgument("a strategy needs at least one position", at: path.child("positions"))
        }
        for (name, value) in [("commission_bps", strategy.commissionBps), ("slippage_bps", strategy.slippageBps)] {
            guard value.isFinite, value >= 0, value < 10_000 else {
                throw .invalidArgument("\(name) must be in [0, 10000) basis points, got \(value)", at: path.child(name))
            }
        }
    }

    /// Position `p` of the strategy at `path` on its own: ticker, weight, sizing and exits,
    /// conditions. Part of `validate(_:path:cancellation:)`, which adds what looks across
    /// positions (the weights' sum; `validateCashSizing` the cash sizes').
    package static func validate(_ position: Position, at p: Int, path: FieldPath = .strategy) throws(BacktestError) {
        // Paths are built only for an error (this runs for every position of a request).
        try Ticker.validate(position.ticker, field: path.position(p).child("ticker").description)
        // The weight sizes (and rebalances) weight-sized positions only; other sizings ignore it.
        if position.sizing == .weight {
            guard position.weight.isFinite, position.weight > 0, position.weight <= 1 else {
                throw .invalidArgument("weight must be in (0, 1], got \(position.weight)", at: path.position(p).child("weight"))
            }
        }
        if !position.isPlain { try validateSizingAndExits(position, path: path.position(p)) }
        try validate(position.entry, path: { path.position(p).child("entry") })
        if let exit = position.exit { try validate(exit, path: { path.position(p).child("exit") }) }
    }

    /// What the checks across positions add up, per position: its weight when weight-sized,
    /// its size when cash-sized (`validate`, `validateCashSizing`).
    package static func totals(_ position: Position) -> (weight: Double, cash: Double) {
        (position.sizing == .weight ? position.weight : 0, position.sizing == .cash ? position.size : 0)
    }

    /// Issue 15's fields of one position: sizing, stop levels, ATR period and time exit.
    static func validateSizingAndExits(_ position: Position, path: FieldPath) throws(BacktestError) {
        let exits = position.exits
        switch position.sizing {
        case .weight:
            // A size on a weight-sized position would be ignored without a word (a tester's
            // 1e13). (The weight cannot be checked the other way: it defaults to 1.)
            guard position.size == 0 else {
                throw .invalidArgument("size is for sizing cash, shares or risk; this position is weight-sized (its weight decides): set sizing, or leave size out, got \(position.size)", at: path.child("size"))
            }
        case .cash, .shares:
            guard position.size.isFinite, position.size > 0, position.size <= maxAmount else {
                throw .invalidArgument("size must be a positive \(position.sizing == .cash ? "cash amount" : "share count") of at most 1e12 for sizing \(position.sizing.rawValue), got \(position.size)", at: path.child("size"))
            }
        case .risk:
            guard position.size.isFinite, position.size > 0, position.size <= 1 else {
                throw .invalidArgument("size must be the fraction of equity risked, in (0, 1], got \(position.size)", at: path.child("size"))
            }
            guard exits.stopLoss != nil else {
                throw .invalidArgument("risk sizing needs a stop_loss (the risk is the distance to it)", at: path.child("stop_loss"))
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
                throw .invalidArgument("\(name) must be a positive distance, got \(value)", at: path.child(name))
            }
            if fractions && boundedForLong && value >= 1 {
                throw .invalidArgument(
                    "\(name) must be below 1 (a fraction of the entry price) for a \(position.direction.rawValue) position, got \(value)",
                    at: path.child(name))
            }
        }
        if let period = exits.atrPeriod {
            guard (1...10_000).contains(period) else {
                throw .invalidArgument("stop_atr_period must be in 1...10000 bars, got \(period)", at: path.child("stop_atr_period"))
            }
            guard exits.hasPriceLevel else {
                throw .invalidArgument("stop_atr_period needs a stop_loss, take_profit or trailing_stop", at: path.child("stop_atr_period"))
            }
        }
        if let bars = exits.maxBars, bars < 1 {
            throw .invalidArgument("max_bars must be at least 1, got \(bars)", at: path.child("max_bars"))
        }
    }

    /// The deepest nesting of conditions accepted: a position's `entry` is level 1, each `all`,
    /// `any` or `not` inside adds one. The wire decoder enforces the same bound before protobuf-c
    /// unpacks (PROTOCOL.md, "Limits").
    package static let maxConditionDepth = 48

    /// `path` names the condition; it is called only to name the field of an error, so a valid
    /// condition builds no path at all (the walk runs for every operand of every position).
    static func validate(_ condition: Condition, path: () -> FieldPath, depth: Int = 1) throws(BacktestError) {
        guard depth <= maxConditionDepth else {
            throw .invalidArgument("conditions nest deeper than \(maxConditionDepth) levels", at: path())
        }
        switch condition {
        case .compare(let lhs, _, let rhs):
            if case .number = lhs, case .number = rhs {
                throw .invalidArgument("a comparison needs at least one series (price field or indicator)", at: path().child("compare"))
            }
            try validate(lhs, path: { path().compareOperand(lhs: true) })
            try validate(rhs, path: { path().compareOperand(lhs: false) })
        case .all(let members), .any(let members):
            let isAll = if case .all = condition { true } else { false }
            guard !members.isEmpty else {
                throw .invalidArgument(
                    "'\(isAll ? "all" : "any")' needs at least one condition",
                    at: path().child(isAll ? "all" : "any").child("conditions"))
            }
            for (i, member) in members.enumerated() {
                try validate(member, path: { path().member(i, ofAll: isAll) }, depth: depth + 1)
            }
        case .not(let inner):
            try validate(inner, path: { path().negated }, depth: depth + 1)
        }
    }

    /// `path` names the operand, called only for an error.
    static func validate(_ operand: Operand, path: () -> FieldPath) throws(BacktestError) {
        switch operand {
        case .number(let value):
            guard value.isFinite else { throw .invalidArgument("number must be finite, got \(value)", at: path().child("number")) }
        case .series(let series):
            if let ticker = series.ticker { try Ticker.validate(ticker, field: path().series.child("ticker").description) }
            if case .indicator(let spec) = series.source {
                try IndicatorCatalog.requireParameters(spec, field: path().series.child("indicator").description)
                _ = try IndicatorCatalog.normalize(spec, field: path().series.child("indicator").description)
            }
        }
    }

}
