import BacktestCore
import BacktestModel
import CBacktestProto
import CProtobufC

// Result messages (results, batch progress, error statuses): C structs → Swift model.
// A client decodes these from a server; a malformed value still gets a named field, never a trap.

enum ResultConversion {
    static func date(_ packed: Int32, _ path: String) throws -> TradingDate {
        guard let date = TradingDate(yyyymmdd: packed) else {
            throw BacktestError.invalidArgument("\(packed) is not a date YYYYMMDD", field: path)
        }
        return date
    }

    static func order(_ c: UnsafePointer<Backtest__V1__Order>, path: String) throws -> Order {
        let m = c.pointee
        let side: OrderSide = switch m.side {
        case BACKTEST__V1__SIDE__BUY: .buy
        case BACKTEST__V1__SIDE__SELL: .sell
        default: throw unknownEnum(m.side.rawValue, join(path, "side"), backtest__v1__side__descriptor)
        }
        let reason: OrderReason = switch m.reason {
        case BACKTEST__V1__ORDER_REASON__ORDER_REASON_ENTRY: .entry
        case BACKTEST__V1__ORDER_REASON__ORDER_REASON_REBALANCE: .rebalance
        case BACKTEST__V1__ORDER_REASON__ORDER_REASON_SIGNAL: .signal
        case BACKTEST__V1__ORDER_REASON__ORDER_REASON_STOP_LOSS: .stopLoss
        case BACKTEST__V1__ORDER_REASON__ORDER_REASON_TAKE_PROFIT: .takeProfit
        case BACKTEST__V1__ORDER_REASON__ORDER_REASON_TRAILING_STOP: .trailingStop
        case BACKTEST__V1__ORDER_REASON__ORDER_REASON_TIME: .time
        default: throw unknownEnum(m.reason.rawValue, join(path, "reason"), backtest__v1__order_reason__descriptor)
        }
        return Order(date: try date(m.date, join(path, "date")), ticker: string(m.ticker), side: side,
                     quantity: m.quantity, price: m.price, commission: m.commission, reason: reason)
    }

    static func metrics(_ c: UnsafePointer<Backtest__V1__Metrics>?) -> Metrics {
        var metrics = Metrics()
        guard let m = c?.pointee else { return metrics }
        metrics.totalReturn = m.total_return
        metrics.cagr = m.cagr
        metrics.volatility = m.volatility
        metrics.sharpe = m.sharpe
        metrics.sortino = m.sortino
        metrics.maxDrawdown = m.max_drawdown
        metrics.maxDrawdownDuration = Int(m.max_drawdown_duration)
        metrics.calmar = m.calmar
        metrics.alpha = m.alpha
        metrics.beta = m.beta
        metrics.winRate = m.win_rate
        metrics.profitFactor = m.profit_factor
        metrics.tradeCount = Int(m.trade_count)
        metrics.exposure = m.exposure
        return metrics
    }

    static func statistics(_ c: UnsafePointer<Backtest__V1__RunStatistics>) -> RunStatistics {
        let m = c.pointee
        var stats = RunStatistics()
        stats.totalMs = m.total_ms
        stats.analysisMs = m.analysis_ms
        stats.dataMs = m.data_ms
        stats.indicatorsMs = m.indicators_ms
        stats.simulationMs = m.simulation_ms
        stats.barsProcessed = Int(clamping: m.bars_processed)
        stats.cacheHits = Int(clamping: m.cache_hits)
        stats.cacheMisses = Int(clamping: m.cache_misses)
        stats.apiCalls = Int(m.api_calls)
        stats.indicatorSeries = Int(m.indicator_series)
        stats.indicatorSeriesComputed = Int(m.indicator_series_computed)
        stats.engine = string(m.engine)
        stats.dataSource = string(m.data_source)
        stats.variantsPerSecond = m.variants_per_second
        return stats
    }

    static func result(_ c: UnsafePointer<Backtest__V1__BacktestResult>, path: String) throws -> BacktestResult {
        let m = c.pointee
        let dates = try scalars(m.dates, m.n_dates).enumerated().map { index, packed in
            try date(packed, join(path, "dates[\(index)]"))
        }
        let orders = try messages(m.orders, m.n_orders) { order, index in
            try self.order(order, path: join(path, "orders[\(index)]"))
        }
        let warnings = try self.warnings(m, path: path)
        return BacktestResult(
            strategyName: string(m.strategy_name), dates: dates, equity: scalars(m.equity, m.n_equity),
            benchmark: scalars(m.benchmark, m.n_benchmark), orders: orders, metrics: metrics(m.metrics),
            benchmarkMetrics: metrics(m.benchmark_metrics), warnings: warnings,
            stats: m.stats.map { statistics($0) } ?? RunStatistics(), initialCapital: m.initial_capital,
            benchmarkTicker: string(m.benchmark_ticker), dataSource: string(m.data_source))
    }

    /// The typed `warning_details` when the server sent them (a kind this code does not know
    /// reads as `.unspecified`); otherwise, from a server that sent only `warnings`, each text as
    /// an `.unspecified` warning without tickers or dates.
    static func warnings(_ m: Backtest__V1__BacktestResult, path: String) throws -> [BacktestWarning] {
        try warnings(m.warnings, m.n_warnings, details: m.warning_details, m.n_warning_details, path: path)
    }

    /// The same for a BacktestSummary's `warnings` and `warning_details`.
    static func warnings(_ m: Backtest__V1__BacktestSummary, path: String) throws -> [BacktestWarning] {
        try warnings(m.warnings, m.n_warnings, details: m.warning_details, m.n_warning_details, path: path)
    }

    static func warnings(
        _ texts: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ textCount: Int,
        details: UnsafeMutablePointer<UnsafeMutablePointer<Backtest__V1__Warning>?>?, _ detailCount: Int, path: String
    ) throws -> [BacktestWarning] {
        guard detailCount > 0 else {
            return scalars(texts, textCount).map { BacktestWarning(.unspecified, message: string($0)) }
        }
        return try messages(details, detailCount) { warning, index in
            let w = warning.pointee
            let field = join(path, "warning_details[\(index)]")
            let dates = try scalars(w.dates, w.n_dates).enumerated().map { i, packed in
                try date(packed, join(field, "dates[\(i)]"))
            }
            return BacktestWarning(
                BacktestWarning.Kind(rawValue: Int32(bitPattern: w.kind.rawValue)) ?? .unspecified,
                tickers: scalars(w.tickers, w.n_tickers).map { string($0) }, dates: dates, message: string(w.message))
        }
    }

    static func status(_ c: UnsafePointer<Backtest__V1__ErrorStatus>?) -> CallStatus {
        guard let m = c?.pointee else { return .ok }
        return CallStatus(code: StatusCode(rawValue: Int32(bitPattern: m.code.rawValue)) ?? .unknown,
                          message: string(m.message), field: string(m.field))
    }

    static func variantResult(_ variant: UnsafePointer<Backtest__V1__VariantResult>, path variantPath: String) throws -> VariantResult {
        let v = variant.pointee
        let detail: VariantOutcome
        switch v.outcome_case {
        case BACKTEST__V1__VARIANT_RESULT__OUTCOME_RESULT:
            detail = .full(try result(required(v.result, join(variantPath, "result")), path: join(variantPath, "result")))
        case BACKTEST__V1__VARIANT_RESULT__OUTCOME_SUMMARY:
            detail = .summary(try summary(required(v.summary, join(variantPath, "summary")), path: join(variantPath, "summary")))
        case BACKTEST__V1__VARIANT_RESULT__OUTCOME_ERROR:
            detail = .failure(status(v.error).error ?? BacktestError(.unknown, "variant failed without a status"))
        default:
            throw BacktestError.invalidArgument("a variant result needs a result, a summary or an error", field: variantPath)
        }
        let parameters = messages(v.parameters, v.n_parameters) { p, _ in
            GridParameter(path: string(p.pointee.path), value: string(p.pointee.value))
        }
        return VariantResult(index: Int(v.index), detail: detail, parameters: parameters)
    }

    static func summary(_ c: UnsafePointer<Backtest__V1__BacktestSummary>, path: String) throws -> BacktestSummary {
        let m = c.pointee
        var stats = RunStatistics()
        stats.simulationMs = m.simulation_ms
        return BacktestSummary(
            strategyName: string(m.strategy_name), metrics: metrics(m.metrics), benchmarkMetrics: metrics(m.benchmark_metrics),
            finalEquity: m.final_equity, initialCapital: m.initial_capital, orderCount: Int(m.order_count),
            warnings: try warnings(m, path: path), stats: stats)
    }

    static func progress(_ c: UnsafePointer<Backtest__V1__ProgressUpdate>, path: String) throws -> ProgressUpdate {
        let m = c.pointee
        let state: BatchState = switch m.state {
        case BACKTEST__V1__BATCH_STATE__BATCH_PARTIAL: .partial
        case BACKTEST__V1__BATCH_STATE__BATCH_FINAL: .final
        case BACKTEST__V1__BATCH_STATE__BATCH_CANCELLED: .cancelled
        case BACKTEST__V1__BATCH_STATE__BATCH_FAILED: .failed
        default: throw unknownEnum(m.state.rawValue, join(path, "state"), backtest__v1__batch_state__descriptor)
        }
        let results = try messages(m.results, m.n_results) { variant, index in
            try variantResult(variant, path: join(path, "results[\(index)]"))
        }
        return ProgressUpdate(
            batchID: string(m.batch_id), completed: Int(m.completed), total: Int(m.total), state: state,
            results: results, stats: m.stats.map { statistics($0) }, error: m.error.flatMap { status($0).error })
    }
}
