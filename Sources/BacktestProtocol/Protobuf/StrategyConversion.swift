import BacktestCore
import BacktestModel
import CBacktestProto
import CProtobufC

// Strategy messages: C structs (unpacked by protobuf-c) ⇄ the engine's Swift model.
// Decoding validates what the wire cannot: unknown enum values, unset oneofs, missing required
// sub-messages; each error names the field path. Semantic checks (weights, tickers) are the engine's.

enum StrategyConversion {
    // MARK: C → Swift

    static func strategy(_ c: UnsafePointer<Backtest__V1__Strategy>, path: FieldPath) throws -> Strategy {
        let m = c.pointee
        let positions = try messages(m.positions, m.n_positions) { position, index in
            try self.position(position, path: { path.child("positions", index: index) })
        }
        let fill: FillTiming = switch m.fill {
        case BACKTEST__V1__FILL_TIMING__FILL_TIMING_DEFAULT: .default
        case BACKTEST__V1__FILL_TIMING__FILL_NEXT_OPEN: .nextOpen
        case BACKTEST__V1__FILL_TIMING__FILL_CLOSE: .close
        default: throw unknownEnum(m.fill.rawValue, path.child("fill").description, backtest__v1__fill_timing__descriptor)
        }
        let rebalance: Rebalance = switch m.rebalance {
        case BACKTEST__V1__REBALANCE__REBALANCE_NONE: .none
        case BACKTEST__V1__REBALANCE__REBALANCE_DAILY: .daily
        case BACKTEST__V1__REBALANCE__REBALANCE_WEEKLY: .weekly
        case BACKTEST__V1__REBALANCE__REBALANCE_MONTHLY: .monthly
        default: throw unknownEnum(m.rebalance.rawValue, path.child("rebalance").description, backtest__v1__rebalance__descriptor)
        }
        return Strategy(name: string(m.name), positions: positions, fill: fill, commissionBps: m.commission_bps,
                        slippageBps: m.slippage_bps, rebalance: rebalance, allowLeverage: m.allow_leverage != 0)
    }

    // Below the strategy, `path` is called only to name the field of an error: a valid position
    // builds no path (this runs for every position and operand of a request).

    static func position(_ c: UnsafePointer<Backtest__V1__Position>, path: () -> FieldPath) throws -> Position {
        let m = c.pointee
        let entry = try condition(required(m.entry, path().child("entry").description), path: { path().child("entry") })
        let exit = try m.exit.map { try condition($0, path: { path().child("exit") }) }
        let direction: PositionDirection = switch m.direction {
        case BACKTEST__V1__DIRECTION__DIRECTION_DEFAULT: .default
        case BACKTEST__V1__DIRECTION__DIRECTION_LONG: .long
        case BACKTEST__V1__DIRECTION__DIRECTION_SHORT: .short
        default: throw unknownEnum(m.direction.rawValue, path().child("direction").description, backtest__v1__direction__descriptor)
        }
        let sizing: SizingMode = switch m.sizing {
        case BACKTEST__V1__SIZING__SIZING_DEFAULT: .default
        case BACKTEST__V1__SIZING__SIZING_WEIGHT: .weight
        case BACKTEST__V1__SIZING__SIZING_CASH: .cash
        case BACKTEST__V1__SIZING__SIZING_SHARES: .shares
        case BACKTEST__V1__SIZING__SIZING_RISK: .risk
        default: throw unknownEnum(m.sizing.rawValue, path().child("sizing").description, backtest__v1__sizing__descriptor)
        }
        // 0 on the wire: no such exit (the validation rejects an explicit non-positive level
        // from JSON, where absence and 0 differ; on the wire a negative value is rejected).
        func level(_ value: Double) -> Double? { value == 0 ? nil : value }
        let exits = PriceExits(
            stopLoss: level(m.stop_loss), takeProfit: level(m.take_profit), trailingStop: level(m.trailing_stop),
            atrPeriod: m.stop_atr_period == 0 ? nil : Int(m.stop_atr_period), maxBars: m.max_bars == 0 ? nil : Int(m.max_bars))
        return Position(
            ticker: string(m.ticker), weight: m.weight, entry: entry, exit: exit, direction: direction, sizing: sizing,
            size: m.size, exits: exits)
    }

    static func condition(_ c: UnsafePointer<Backtest__V1__Condition>, path: () -> FieldPath) throws -> Condition {
        let m = c.pointee
        switch m.kind_case {
        case BACKTEST__V1__CONDITION__KIND_COMPARE:
            let compare = try required(m.compare, path().child("compare").description).pointee
            let op: Comparison = switch compare.op {
            case BACKTEST__V1__COMPARISON__GREATER: .greater
            case BACKTEST__V1__COMPARISON__GREATER_EQUAL: .greaterOrEqual
            case BACKTEST__V1__COMPARISON__LESS: .less
            case BACKTEST__V1__COMPARISON__LESS_EQUAL: .lessOrEqual
            case BACKTEST__V1__COMPARISON__CROSSES_ABOVE: .crossesAbove
            case BACKTEST__V1__COMPARISON__CROSSES_BELOW: .crossesBelow
            case BACKTEST__V1__COMPARISON__COMPARISON_UNSPECIFIED:
                throw BacktestError.invalidArgument("a comparison operator is required", at: path().child("compare").child("op"))
            default: throw unknownEnum(compare.op.rawValue, path().child("compare").child("op").description, backtest__v1__comparison__descriptor)
            }
            return .compare(
                lhs: try operand(required(compare.lhs, path().compareOperand(lhs: true).description), path: { path().compareOperand(lhs: true) }),
                op: op,
                rhs: try operand(required(compare.rhs, path().compareOperand(lhs: false).description), path: { path().compareOperand(lhs: false) }))
        case BACKTEST__V1__CONDITION__KIND_ALL:
            return .all(try conditionList(required(m.all, path().child("all").description), path: { path().child("all") }))
        case BACKTEST__V1__CONDITION__KIND_ANY:
            return .any(try conditionList(required(m.any, path().child("any").description), path: { path().child("any") }))
        case BACKTEST__V1__CONDITION__KIND_NOT:
            return .not(try condition(required(m.not_, path().child("not").description), path: { path().child("not") }))
        default:
            throw BacktestError.invalidArgument("a condition needs one of compare, all, any, not", at: path())
        }
    }

    private static func conditionList(_ c: UnsafePointer<Backtest__V1__ConditionList>, path: () -> FieldPath) throws -> [Condition] {
        let list = try messages(c.pointee.conditions, c.pointee.n_conditions) { element, index in
            try condition(element, path: { path().child("conditions", index: index) })
        }
        guard !list.isEmpty else {
            throw BacktestError.invalidArgument("a condition list needs at least one condition", at: path().child("conditions"))
        }
        return list
    }

    static func operand(_ c: UnsafePointer<Backtest__V1__Operand>, path: () -> FieldPath) throws -> Operand {
        switch c.pointee.value_case {
        case BACKTEST__V1__OPERAND__VALUE_NUMBER:
            return .number(c.pointee.number)
        case BACKTEST__V1__OPERAND__VALUE_SERIES:
            return .series(try series(required(c.pointee.series, path().series.description), path: { path().series }))
        default:
            throw BacktestError.invalidArgument("an operand needs a number or a series", at: path())
        }
    }

    static func series(_ c: UnsafePointer<Backtest__V1__Series>, path: () -> FieldPath) throws -> SeriesRef {
        let m = c.pointee
        let ticker = string(m.ticker)
        switch m.source_case {
        case BACKTEST__V1__SERIES__SOURCE_FIELD:
            let field: PriceField = switch m.field {
            case BACKTEST__V1__PRICE_FIELD__OPEN: .open
            case BACKTEST__V1__PRICE_FIELD__HIGH: .high
            case BACKTEST__V1__PRICE_FIELD__LOW: .low
            case BACKTEST__V1__PRICE_FIELD__CLOSE: .close
            case BACKTEST__V1__PRICE_FIELD__VOLUME: .volume
            case BACKTEST__V1__PRICE_FIELD__PRICE_FIELD_UNSPECIFIED:
                throw BacktestError.invalidArgument("a price field is required", at: path().child("field"))
            default: throw unknownEnum(m.field.rawValue, path().child("field").description, backtest__v1__price_field__descriptor)
            }
            return SeriesRef(ticker: ticker.isEmpty ? nil : ticker, source: .field(field))
        case BACKTEST__V1__SERIES__SOURCE_INDICATOR:
            let spec = try required(m.indicator, path().child("indicator").description).pointee
            let indicator = IndicatorSpec(type: string(spec.type), params: scalars(spec.params, spec.n_params),
                                          output: string(spec.output))
            return SeriesRef(ticker: ticker.isEmpty ? nil : ticker, source: .indicator(indicator))
        default:
            throw BacktestError.invalidArgument("a series needs a price field or an indicator", at: path())
        }
    }

    static func settings(_ c: UnsafePointer<Backtest__V1__BacktestSettings>, path: FieldPath) throws -> BacktestSettings {
        let m = c.pointee
        func date(_ pointer: UnsafeMutablePointer<CChar>?, _ name: String) throws -> TradingDate {
            let text = string(pointer)
            guard let date = TradingDate(iso: text) else {
                throw BacktestError.invalidArgument(
                    text.isEmpty ? "a date YYYY-MM-DD is required" : "\(quotedInput(text)) is not a date of the form YYYY-MM-DD",
                    at: path.child(name))
            }
            return date
        }
        let adjustment: PriceAdjustment = switch m.adjustment {
        case BACKTEST__V1__PRICE_ADJUSTMENT__ADJUSTMENT_DEFAULT: .default
        case BACKTEST__V1__PRICE_ADJUSTMENT__ADJUSTMENT_RAW: .raw
        case BACKTEST__V1__PRICE_ADJUSTMENT__ADJUSTMENT_SPLIT: .split
        case BACKTEST__V1__PRICE_ADJUSTMENT__ADJUSTMENT_ALL: .all
        default: throw unknownEnum(m.adjustment.rawValue, path.child("adjustment").description, backtest__v1__price_adjustment__descriptor)
        }
        let benchmark = string(m.benchmark)
        return BacktestSettings(
            start: try date(m.start_date, "start_date"), end: try date(m.end_date, "end_date"),
            initialCapital: m.initial_capital == 0 ? BacktestSettings.defaultInitialCapital : m.initial_capital,
            adjustment: adjustment, benchmark: benchmark.isEmpty ? BacktestSettings.defaultBenchmark : benchmark)
    }
}
