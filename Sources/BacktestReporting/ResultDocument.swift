import BacktestCore
import BacktestModel
import Foundation

/// The JSON that `backtest run --json` prints: one object, snake_case keys, dates "YYYY-MM-DD",
/// money and returns as plain numbers (returns as fractions: 0.12 = 12%). The shape is stable;
/// new keys may be added, none renamed:
///
///     {"strategy_name": "AAPL SMA 50/200 trend", "benchmark_ticker": "SPY", "data_source": "demo",
///      "engine": "v2", "start": "2016-01-04", "end": "2025-12-31", "trading_days": 2514,
///      "initial_capital": 100000, "final_equity": 251234.5,
///      "metrics": {"total_return": 1.51, "cagr": 0.097, "volatility": 0.21, "sharpe": 0.55,
///                  "sortino": 0.8, "max_drawdown": -0.31, "max_drawdown_duration": 402,
///                  "calmar": 0.31, "alpha": 0.01, "beta": 0.8, "win_rate": 0.6,
///                  "profit_factor": 2.1, "trade_count": 9, "exposure": 0.71},
///      "benchmark_metrics": {... the same keys ...},
///      "warnings": ["..."],
///      "orders": [{"date": "2016-10-18", "ticker": "AAPL", "side": "buy", "quantity": 850.1,
///                  "price": 117.4, "commission": 9.98, "reason": "entry"}],
///      "equity_curve": [{"date": "2016-01-04", "equity": 100000, "benchmark": 100000}],
///      "stats": {"total_ms": 3.2, "analysis_ms": 0.1, "data_ms": 1.9, "indicators_ms": 0.4,
///                "simulation_ms": 0.8, "bars_processed": 5028, "cache_hits": 2, "cache_misses": 0,
///                "api_calls": 0}}
///
/// A metric that is infinite or undefined (profit factor without a losing trade, Sharpe of a flat
/// line) is `null`, because JSON has no infinity and a string would break numeric readers.
package struct ResultDocument: Codable, Sendable, Equatable {
    package struct MetricsDocument: Codable, Sendable, Equatable {
        @ExplicitNull package var totalReturn: Double?
        @ExplicitNull package var cagr: Double?
        @ExplicitNull package var volatility: Double?
        @ExplicitNull package var sharpe: Double?
        @ExplicitNull package var sortino: Double?
        @ExplicitNull package var maxDrawdown: Double?
        package var maxDrawdownDuration: Int
        @ExplicitNull package var calmar: Double?
        @ExplicitNull package var alpha: Double?
        @ExplicitNull package var beta: Double?
        @ExplicitNull package var winRate: Double?
        @ExplicitNull package var profitFactor: Double?
        package var tradeCount: Int
        @ExplicitNull package var exposure: Double?

        package init(_ m: Metrics) {
            totalReturn = finite(m.totalReturn)
            cagr = finite(m.cagr)
            volatility = finite(m.volatility)
            sharpe = finite(m.sharpe)
            sortino = finite(m.sortino)
            maxDrawdown = finite(m.maxDrawdown)
            maxDrawdownDuration = m.maxDrawdownDuration
            calmar = finite(m.calmar)
            alpha = finite(m.alpha)
            beta = finite(m.beta)
            winRate = finite(m.winRate)
            profitFactor = finite(m.profitFactor)
            tradeCount = m.tradeCount
            exposure = finite(m.exposure)
        }
    }

    package struct OrderDocument: Codable, Sendable, Equatable {
        package var date: TradingDate
        package var ticker: String
        package var side: OrderSide
        package var quantity, price, commission: Double
        /// entry, rebalance, signal, stop_loss, take_profit, trailing_stop or time; absent in
        /// documents written before issue 15.
        package var reason: OrderReason?
    }

    package struct EquityPoint: Codable, Sendable, Equatable {
        package var date: TradingDate
        @ExplicitNull package var equity: Double?
        @ExplicitNull package var benchmark: Double?
    }

    package struct StatsDocument: Codable, Sendable, Equatable {
        package var totalMs, analysisMs, dataMs, indicatorsMs, simulationMs: Double
        package var barsProcessed, cacheHits, cacheMisses, apiCalls: Int
    }

    package var strategyName: String
    package var benchmarkTicker: String
    package var dataSource: String
    package var engine: String
    @ExplicitNull package var start: TradingDate?
    @ExplicitNull package var end: TradingDate?
    package var tradingDays: Int
    package var initialCapital: Double
    @ExplicitNull package var finalEquity: Double?
    package var metrics: MetricsDocument
    package var benchmarkMetrics: MetricsDocument
    package var warnings: [String]
    package var orders: [OrderDocument]
    package var equityCurve: [EquityPoint]
    package var stats: StatsDocument

    package init(_ result: BacktestResult) {
        strategyName = result.strategyName
        benchmarkTicker = result.benchmarkTicker
        dataSource = result.dataSource
        engine = result.stats.engine
        start = result.dates.first
        end = result.dates.last
        tradingDays = result.dates.count
        initialCapital = result.initialCapital
        finalEquity = finite(result.finalEquity)
        metrics = MetricsDocument(result.metrics)
        benchmarkMetrics = MetricsDocument(result.benchmarkMetrics)
        warnings = result.warnings.map(\.message)
        orders = result.orders.map {
            OrderDocument(date: $0.date, ticker: $0.ticker, side: $0.side, quantity: $0.quantity, price: $0.price, commission: $0.commission,
                reason: $0.reason)
        }
        equityCurve = result.dates.indices.map { i in
            EquityPoint(date: result.dates[i],
                        equity: result.equity.indices.contains(i) ? finite(result.equity[i]) : nil,
                        benchmark: result.benchmark.indices.contains(i) ? finite(result.benchmark[i]) : nil)
        }
        let s = result.stats
        stats = StatsDocument(
            totalMs: s.totalMs, analysisMs: s.analysisMs, dataMs: s.dataMs, indicatorsMs: s.indicatorsMs,
            simulationMs: s.simulationMs, barsProcessed: s.barsProcessed, cacheHits: s.cacheHits,
            cacheMisses: s.cacheMisses, apiCalls: s.apiCalls)
    }

    /// Pretty-printed with sorted keys, so diffs of two runs line up.
    package func json() throws -> Data {
        try JSONCoding.encoder.encode(self)
    }

    package static func decode(_ data: Data) throws -> ResultDocument {
        try JSONCoding.decoder.decode(ResultDocument.self, from: data)
    }
}

/// The coders of every JSON the CLI writes: snake_case keys, sorted, pretty.
package enum JSONCoding {
    package static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    package static var decoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }
}

/// An optional number that is written as `null` rather than left out, so every key of the
/// documented shape is always there.
@propertyWrapper
package struct ExplicitNull<Value: Codable & Sendable & Equatable>: Codable, Sendable, Equatable {
    package var wrappedValue: Value?

    package init(wrappedValue: Value?) {
        self.wrappedValue = wrappedValue
    }

    package init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        wrappedValue = container.decodeNil() ? nil : try container.decode(Value.self)
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if let wrappedValue { try container.encode(wrappedValue) } else { try container.encodeNil() }
    }
}

func finite(_ value: Double) -> Double? {
    value.isFinite ? value : nil
}
