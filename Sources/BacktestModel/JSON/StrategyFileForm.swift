import BacktestCore

extension Strategy {
    /// The strategy its strategy-file JSON decodes to (`StrategyFile` encoded, then decoded),
    /// computed on the model in one pass over the positions: tickers upper case; an indicator
    /// through its canonical key (normalized, or the price field the key names); and the checks
    /// that encoding (finite numbers) and decoding (exit levels above 0, counts at least 1) make.
    ///
    /// A grid's base is read this way, so that typed assignment and the JSON path give the same
    /// variants. Through Foundation JSON the round trip took three passes: 5.6 s of CPU to refuse
    /// a grid over a 100,000-position base (`GridFileFormTests` holds the two equal).
    ///
    /// Throws INVALID_ARGUMENT naming the JSON path of the fault within the strategy
    /// ("positions[3].stop_loss"), with the message decoding the file would give.
    package func fileForm() throws(BacktestError) -> Strategy {
        var sources: [IndicatorSpec: SeriesSource] = [:]
        func finite(_ value: Double, _ field: @autoclosure () -> String) throws(BacktestError) {
            guard value.isFinite else {
                throw .invalidArgument("\(value) cannot be written in a strategy file: a number must be finite", field: field())
            }
        }
        func source(_ source: SeriesSource, _ field: @autoclosure () -> String) throws(BacktestError) -> SeriesSource {
            guard case .indicator(let spec) = source else { return source }
            if let known = sources[spec] { return known }
            let key = spec.canonicalKey
            let parsed: SeriesSource
            if let field = PriceField(rawValue: key.lowercased()) {
                parsed = .field(field)
            } else {
                do {
                    parsed = .indicator(try IndicatorSpec(parsing: key))
                } catch {
                    throw .invalidArgument(
                        "\(quotedInput(key, limit: 40)) is neither a price field (open, high, low, close, volume) nor a valid indicator key: \(error.message)",
                        field: field())
                }
            }
            sources[spec] = parsed
            return parsed
        }
        func operand(_ operand: Operand, _ field: @autoclosure () -> String) throws(BacktestError) -> Operand {
            switch operand {
            case .number:
                return operand
            case .series(var series):
                // A series on another ticker is the object {"series": key, "ticker": t}.
                series.source = try source(series.source, series.ticker == nil ? field() : field() + ".series")
                series.ticker = series.ticker?.uppercased()
                return .series(series)
            }
        }
        func condition(_ node: Condition, _ field: @autoclosure () -> String) throws(BacktestError) -> Condition {
            switch node {
            case .compare(let lhs, let op, let rhs):
                return .compare(lhs: try operand(lhs, field() + ".lhs"), op: op, rhs: try operand(rhs, field() + ".rhs"))
            case .all(let members):
                var out: [Condition] = []
                out.reserveCapacity(members.count)
                for (i, member) in members.enumerated() { out.append(try condition(member, field() + ".all[\(i)]")) }
                return .all(out)
            case .any(let members):
                var out: [Condition] = []
                out.reserveCapacity(members.count)
                for (i, member) in members.enumerated() { out.append(try condition(member, field() + ".any[\(i)]")) }
                return .any(out)
            case .not(let inner):
                return .not(try condition(inner, field() + ".not"))
            }
        }
        // Decoding's checks (`Position.init(from:)`), in its words.
        func level(_ value: Double?, _ key: String, _ field: @autoclosure () -> String) throws(BacktestError) {
            guard let value else { return }
            guard value > 0 else {
                throw .invalidArgument("\(key) must be a positive distance, got \(value) (leave the key out for none)", field: field() + "." + key)
            }
        }
        func count(_ value: Int?, _ key: String, _ field: @autoclosure () -> String) throws(BacktestError) {
            guard let value, value < 1 else { return }
            throw .invalidArgument("\(key) must be at least 1, got \(value) (leave the key out for none)", field: field() + "." + key)
        }
        // Encoding first, over the whole strategy (as the round trip fails before it decodes).
        func finiteNumbers(_ node: Condition, _ field: @autoclosure () -> String) throws(BacktestError) {
            switch node {
            case .compare(let lhs, _, let rhs):
                if case .number(let value) = lhs { try finite(value, field() + ".lhs") }
                if case .number(let value) = rhs { try finite(value, field() + ".rhs") }
            case .all(let members):
                for (i, member) in members.enumerated() { try finiteNumbers(member, field() + ".all[\(i)]") }
            case .any(let members):
                for (i, member) in members.enumerated() { try finiteNumbers(member, field() + ".any[\(i)]") }
            case .not(let inner):
                try finiteNumbers(inner, field() + ".not")
            }
        }
        for (p, position) in positions.enumerated() {
            let field = "positions[\(p)]"
            try finite(position.weight, field + ".weight")
            try finiteNumbers(position.entry, field + ".entry")
            if let exit = position.exit { try finiteNumbers(exit, field + ".exit") }
            try finite(position.size, field + ".size")
            for (key, level) in [("stop_loss", position.exits.stopLoss), ("take_profit", position.exits.takeProfit), ("trailing_stop", position.exits.trailingStop)] {
                if let level { try finite(level, field + "." + key) }
            }
        }
        try finite(commissionBps, "commission_bps")
        try finite(slippageBps, "slippage_bps")
        // Then decoding's changes and checks, position by position. A position is written back
        // only when it changed, so a strategy already in its file form shares its storage (the
        // positions and their conditions) with the result: a grid's base is then held once, not
        // twice (a tester's 16 grids over 95,000-position bases in flight held both copies of each).
        var strategy = self
        for p in strategy.positions.indices {
            let field = "positions[\(p)]"
            var position = strategy.positions[p]
            var changed = false
            let ticker = position.ticker.uppercased()
            if ticker != position.ticker { position.ticker = ticker; changed = true }
            let entry = try condition(position.entry, field + ".entry")
            if entry != position.entry { position.entry = entry; changed = true }
            if let exit = position.exit {
                let read = try condition(exit, field + ".exit")
                if read != exit { position.exit = read; changed = true }
            }
            try level(position.exits.stopLoss, "stop_loss", field)
            try level(position.exits.takeProfit, "take_profit", field)
            try level(position.exits.trailingStop, "trailing_stop", field)
            try count(position.exits.atrPeriod, "stop_atr_period", field)
            try count(position.exits.maxBars, "max_bars", field)
            if changed { strategy.positions[p] = position }
        }
        return strategy
    }
}
