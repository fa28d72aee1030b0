import BacktestCore
import BacktestModel
import CBacktestProto
import CProtobufC

// Strategy messages: the engine's Swift model → C structs allocated in a ScratchArena.

extension ScratchArena {
    func strategy(_ s: Strategy) -> UnsafeMutablePointer<Backtest__V1__Strategy> {
        let m = message(PB.strategy)
        m.pointee.name = cString(s.name)
        m.pointee.n_positions = s.positions.count
        m.pointee.positions = messages(s.positions) { position($0) }
        m.pointee.fill = switch s.fill {
        case .nextOpen: BACKTEST__V1__FILL_TIMING__FILL_NEXT_OPEN
        case .close: BACKTEST__V1__FILL_TIMING__FILL_CLOSE
        }
        m.pointee.commission_bps = s.commissionBps
        m.pointee.slippage_bps = s.slippageBps
        m.pointee.rebalance = switch s.rebalance {
        case .none: BACKTEST__V1__REBALANCE__REBALANCE_NONE
        case .daily: BACKTEST__V1__REBALANCE__REBALANCE_DAILY
        case .weekly: BACKTEST__V1__REBALANCE__REBALANCE_WEEKLY
        case .monthly: BACKTEST__V1__REBALANCE__REBALANCE_MONTHLY
        }
        m.pointee.allow_leverage = s.allowLeverage ? 1 : 0
        return m
    }

    func position(_ p: Position) -> UnsafeMutablePointer<Backtest__V1__Position> {
        let m = message(PB.position)
        m.pointee.ticker = cString(p.ticker)
        m.pointee.weight = p.weight
        m.pointee.entry = condition(p.entry)
        m.pointee.exit = p.exit.map { condition($0) }
        m.pointee.direction = switch p.direction {
        // The defaults as 0 on the wire: a plain strategy encodes to the same bytes as before.
        case .long: BACKTEST__V1__DIRECTION__DIRECTION_DEFAULT
        case .short: BACKTEST__V1__DIRECTION__DIRECTION_SHORT
        }
        m.pointee.sizing = switch p.sizing {
        case .weight: BACKTEST__V1__SIZING__SIZING_DEFAULT
        case .cash: BACKTEST__V1__SIZING__SIZING_CASH
        case .shares: BACKTEST__V1__SIZING__SIZING_SHARES
        case .risk: BACKTEST__V1__SIZING__SIZING_RISK
        }
        m.pointee.size = p.size
        m.pointee.stop_loss = p.exits.stopLoss ?? 0
        m.pointee.take_profit = p.exits.takeProfit ?? 0
        m.pointee.trailing_stop = p.exits.trailingStop ?? 0
        m.pointee.stop_atr_period = Int32(clamping: p.exits.atrPeriod ?? 0)
        m.pointee.max_bars = Int32(clamping: p.exits.maxBars ?? 0)
        return m
    }

    func condition(_ c: Condition) -> UnsafeMutablePointer<Backtest__V1__Condition> {
        let m = message(PB.condition)
        switch c {
        case .compare(let lhs, let op, let rhs):
            let compare = message(PB.compare)
            compare.pointee.lhs = operand(lhs)
            compare.pointee.rhs = operand(rhs)
            compare.pointee.op = switch op {
            case .greater: BACKTEST__V1__COMPARISON__GREATER
            case .greaterOrEqual: BACKTEST__V1__COMPARISON__GREATER_EQUAL
            case .less: BACKTEST__V1__COMPARISON__LESS
            case .lessOrEqual: BACKTEST__V1__COMPARISON__LESS_EQUAL
            case .crossesAbove: BACKTEST__V1__COMPARISON__CROSSES_ABOVE
            case .crossesBelow: BACKTEST__V1__COMPARISON__CROSSES_BELOW
            }
            m.pointee.kind_case = BACKTEST__V1__CONDITION__KIND_COMPARE
            m.pointee.compare = compare
        case .all(let members):
            m.pointee.kind_case = BACKTEST__V1__CONDITION__KIND_ALL
            m.pointee.all = conditionList(members)
        case .any(let members):
            m.pointee.kind_case = BACKTEST__V1__CONDITION__KIND_ANY
            m.pointee.any = conditionList(members)
        case .not(let inner):
            m.pointee.kind_case = BACKTEST__V1__CONDITION__KIND_NOT
            m.pointee.not_ = condition(inner)
        }
        return m
    }

    private func conditionList(_ members: [Condition]) -> UnsafeMutablePointer<Backtest__V1__ConditionList> {
        let list = message(PB.conditionList)
        list.pointee.n_conditions = members.count
        list.pointee.conditions = messages(members) { condition($0) }
        return list
    }

    func operand(_ o: Operand) -> UnsafeMutablePointer<Backtest__V1__Operand> {
        let m = message(PB.operand)
        switch o {
        case .number(let value):
            m.pointee.value_case = BACKTEST__V1__OPERAND__VALUE_NUMBER
            m.pointee.number = value
        case .series(let ref):
            m.pointee.value_case = BACKTEST__V1__OPERAND__VALUE_SERIES
            m.pointee.series = series(ref)
        }
        return m
    }

    func series(_ s: SeriesRef) -> UnsafeMutablePointer<Backtest__V1__Series> {
        let m = message(PB.series)
        m.pointee.ticker = cString(s.ticker ?? "")
        switch s.source {
        case .field(let field):
            m.pointee.source_case = BACKTEST__V1__SERIES__SOURCE_FIELD
            m.pointee.field = switch field {
            case .open: BACKTEST__V1__PRICE_FIELD__OPEN
            case .high: BACKTEST__V1__PRICE_FIELD__HIGH
            case .low: BACKTEST__V1__PRICE_FIELD__LOW
            case .close: BACKTEST__V1__PRICE_FIELD__CLOSE
            case .volume: BACKTEST__V1__PRICE_FIELD__VOLUME
            }
        case .indicator(let spec):
            let indicator = message(PB.indicatorSpec)
            indicator.pointee.type = cString(spec.type)
            indicator.pointee.n_params = spec.params.count
            indicator.pointee.params = array(spec.params)
            indicator.pointee.output = cString(spec.output)
            m.pointee.source_case = BACKTEST__V1__SERIES__SOURCE_INDICATOR
            m.pointee.indicator = indicator
        }
        return m
    }

    func settings(_ s: BacktestSettings) -> UnsafeMutablePointer<Backtest__V1__BacktestSettings> {
        let m = message(PB.settings)
        m.pointee.start_date = cString(s.start.iso)
        m.pointee.end_date = cString(s.end.iso)
        m.pointee.initial_capital = s.initialCapital
        m.pointee.adjustment = switch s.adjustment {
        case .raw: BACKTEST__V1__PRICE_ADJUSTMENT__ADJUSTMENT_RAW
        case .split: BACKTEST__V1__PRICE_ADJUSTMENT__ADJUSTMENT_SPLIT
        case .all: BACKTEST__V1__PRICE_ADJUSTMENT__ADJUSTMENT_ALL
        }
        m.pointee.benchmark = cString(s.benchmark)
        return m
    }
}
