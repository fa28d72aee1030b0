import BacktestCore
import BacktestModel
import CBacktestProto
import CProtobufC

// Result messages: Swift model → C structs allocated in a ScratchArena.

extension ScratchArena {
    func status(_ s: CallStatus) -> UnsafeMutablePointer<Backtest__V1__ErrorStatus> {
        let m = message(PB.errorStatus)
        m.pointee.code = Backtest__V1__StatusCode(rawValue: UInt32(bitPattern: s.code.rawValue))
        m.pointee.message = cString(s.message)
        m.pointee.field = cString(s.field)
        return m
    }

    func metrics(_ x: Metrics) -> UnsafeMutablePointer<Backtest__V1__Metrics> {
        let m = message(PB.metrics)
        m.pointee.total_return = x.totalReturn
        m.pointee.cagr = x.cagr
        m.pointee.volatility = x.volatility
        m.pointee.sharpe = x.sharpe
        m.pointee.sortino = x.sortino
        m.pointee.max_drawdown = x.maxDrawdown
        m.pointee.max_drawdown_duration = Int32(clamping: x.maxDrawdownDuration)
        m.pointee.calmar = x.calmar
        m.pointee.alpha = x.alpha
        m.pointee.beta = x.beta
        m.pointee.win_rate = x.winRate
        m.pointee.profit_factor = x.profitFactor
        m.pointee.trade_count = Int32(clamping: x.tradeCount)
        m.pointee.exposure = x.exposure
        return m
    }

    func statistics(_ x: RunStatistics) -> UnsafeMutablePointer<Backtest__V1__RunStatistics> {
        let m = message(PB.runStatistics)
        m.pointee.total_ms = x.totalMs
        m.pointee.analysis_ms = x.analysisMs
        m.pointee.data_ms = x.dataMs
        m.pointee.indicators_ms = x.indicatorsMs
        m.pointee.simulation_ms = x.simulationMs
        m.pointee.bars_processed = UInt64(clamping: x.barsProcessed)
        m.pointee.cache_hits = UInt64(clamping: x.cacheHits)
        m.pointee.cache_misses = UInt64(clamping: x.cacheMisses)
        m.pointee.cache_hit_rate = x.cacheHitRate
        m.pointee.api_calls = UInt32(clamping: x.apiCalls)
        m.pointee.indicator_series = UInt32(clamping: x.indicatorSeries)
        m.pointee.indicator_series_computed = UInt32(clamping: x.indicatorSeriesComputed)
        m.pointee.engine = cString(x.engine)
        m.pointee.data_source = cString(x.dataSource)
        m.pointee.variants_per_second = x.variantsPerSecond
        return m
    }

    func result(_ r: BacktestResult) -> UnsafeMutablePointer<Backtest__V1__BacktestResult> {
        let m = message(PB.backtestResult)
        m.pointee.strategy_name = cString(r.strategyName)
        m.pointee.n_dates = r.dates.count
        m.pointee.dates = array(r.dates.map(\.yyyymmdd))
        m.pointee.n_equity = r.equity.count
        m.pointee.equity = array(r.equity)
        m.pointee.n_benchmark = r.benchmark.count
        m.pointee.benchmark = array(r.benchmark)
        m.pointee.n_orders = r.orders.count
        m.pointee.orders = messages(r.orders) { order in
            let o = message(PB.order)
            o.pointee.date = order.date.yyyymmdd
            o.pointee.ticker = cString(order.ticker)
            o.pointee.side = order.side == .buy ? BACKTEST__V1__SIDE__BUY : BACKTEST__V1__SIDE__SELL
            o.pointee.quantity = order.quantity
            o.pointee.price = order.price
            o.pointee.commission = order.commission
            o.pointee.reason = switch order.reason {
            case .entry: BACKTEST__V1__ORDER_REASON__ORDER_REASON_ENTRY
            case .rebalance: BACKTEST__V1__ORDER_REASON__ORDER_REASON_REBALANCE
            case .signal: BACKTEST__V1__ORDER_REASON__ORDER_REASON_SIGNAL
            case .stopLoss: BACKTEST__V1__ORDER_REASON__ORDER_REASON_STOP_LOSS
            case .takeProfit: BACKTEST__V1__ORDER_REASON__ORDER_REASON_TAKE_PROFIT
            case .trailingStop: BACKTEST__V1__ORDER_REASON__ORDER_REASON_TRAILING_STOP
            case .time: BACKTEST__V1__ORDER_REASON__ORDER_REASON_TIME
            }
            return o
        }
        m.pointee.metrics = metrics(r.metrics)
        m.pointee.benchmark_metrics = metrics(r.benchmarkMetrics)
        m.pointee.n_warnings = r.warnings.count
        m.pointee.warnings = strings(r.warnings.map(\.message))
        m.pointee.n_warning_details = r.warnings.count
        m.pointee.warning_details = warningDetails(r.warnings)
        m.pointee.stats = statistics(r.stats)
        m.pointee.initial_capital = r.initialCapital
        m.pointee.final_equity = r.finalEquity
        m.pointee.benchmark_ticker = cString(r.benchmarkTicker)
        m.pointee.data_source = cString(r.dataSource)
        return m
    }

    func variantResult(_ variant: VariantResult) -> UnsafeMutablePointer<Backtest__V1__VariantResult> {
        let v = message(PB.variantResult)
        v.pointee.index = UInt32(clamping: variant.index)
        switch variant.detail {
        case .full(let result):
            v.pointee.outcome_case = BACKTEST__V1__VARIANT_RESULT__OUTCOME_RESULT
            v.pointee.result = self.result(result)
        case .summary(let summary):
            v.pointee.outcome_case = BACKTEST__V1__VARIANT_RESULT__OUTCOME_SUMMARY
            v.pointee.summary = self.summary(summary)
        case .failure(let error):
            v.pointee.outcome_case = BACKTEST__V1__VARIANT_RESULT__OUTCOME_ERROR
            v.pointee.error = status(CallStatus(error))
        }
        if !variant.parameters.isEmpty {
            v.pointee.n_parameters = variant.parameters.count
            v.pointee.parameters = messages(variant.parameters) { parameter in
                let g = message(PB.gridParameter)
                g.pointee.path = cString(parameter.path)
                g.pointee.value = cString(parameter.value)
                return g
            }
        }
        return v
    }

    func summary(_ s: BacktestSummary) -> UnsafeMutablePointer<Backtest__V1__BacktestSummary> {
        let m = message(PB.backtestSummary)
        m.pointee.strategy_name = cString(s.strategyName)
        m.pointee.metrics = metrics(s.metrics)
        m.pointee.benchmark_metrics = metrics(s.benchmarkMetrics)
        m.pointee.final_equity = s.finalEquity
        m.pointee.initial_capital = s.initialCapital
        m.pointee.order_count = UInt32(clamping: s.orderCount)
        m.pointee.n_warnings = s.warnings.count
        m.pointee.warnings = strings(s.warnings.map(\.message))
        m.pointee.n_warning_details = s.warnings.count
        m.pointee.warning_details = warningDetails(s.warnings)
        m.pointee.simulation_ms = s.stats.simulationMs
        return m
    }

    /// `warnings` as `Warning` messages (BacktestResult and BacktestSummary `warning_details`).
    func warningDetails(_ warnings: [BacktestWarning]) -> UnsafeMutablePointer<UnsafeMutablePointer<Backtest__V1__Warning>?>? {
        messages(warnings) { warning in
            let w = message(PB.warning)
            w.pointee.kind = Backtest__V1__WarningKind(rawValue: UInt32(bitPattern: warning.kind.rawValue))
            w.pointee.n_tickers = warning.tickers.count
            w.pointee.tickers = strings(warning.tickers)
            w.pointee.n_dates = warning.dates.count
            w.pointee.dates = array(warning.dates.map(\.yyyymmdd))
            w.pointee.message = cString(warning.message)
            return w
        }
    }

    func progress(_ p: ProgressUpdate) -> UnsafeMutablePointer<Backtest__V1__ProgressUpdate> {
        let m = message(PB.progressUpdate)
        m.pointee.batch_id = cString(p.batchID)
        m.pointee.completed = UInt32(clamping: p.completed)
        m.pointee.total = UInt32(clamping: p.total)
        m.pointee.state = switch p.state {
        case .partial: BACKTEST__V1__BATCH_STATE__BATCH_PARTIAL
        case .final: BACKTEST__V1__BATCH_STATE__BATCH_FINAL
        case .cancelled: BACKTEST__V1__BATCH_STATE__BATCH_CANCELLED
        case .failed: BACKTEST__V1__BATCH_STATE__BATCH_FAILED
        }
        m.pointee.n_results = p.results.count
        m.pointee.results = messages(p.results) { variantResult($0) }
        m.pointee.stats = p.stats.map { statistics($0) }
        m.pointee.status_text = cString(p.statusText)
        m.pointee.error = p.error.map { status(CallStatus($0)) }
        return m
    }
}
