import BacktestCore

// Results: the Swift twin of BacktestResult and its parts in proto/backtest.proto.

public enum OrderSide: String, Sendable, Hashable, Codable {
    case buy, sell
}

public struct Order: Sendable, Hashable {
    public var date: TradingDate
    public var ticker: String
    public var side: OrderSide
    /// Shares, fractional, always positive.
    public var quantity: Double
    /// Fill price after slippage.
    public var price: Double
    public var commission: Double
    /// Why the order was placed (the exit reason for an order that closes a position).
    public var reason: OrderReason

    public init(
        date: TradingDate, ticker: String, side: OrderSide, quantity: Double, price: Double, commission: Double,
        reason: OrderReason = .entry
    ) {
        self.date = date
        self.ticker = ticker
        self.side = side
        self.quantity = quantity
        self.price = price
        self.commission = commission
        self.reason = reason
    }
}

/// Performance metrics with empyrical's conventions (252 periods a year, risk-free 0).
///
/// An undefined value (a ratio without a denominator, a trade metric without a closed round
/// trip) is NaN; the engine's `PerformanceMetrics` documents which. Equality treats NaN as equal
/// to NaN, field by field, so two results with the same undefined metrics compare equal.
public struct Metrics: Sendable, Hashable {
    public var totalReturn = 0.0
    public var cagr = 0.0
    public var volatility = 0.0
    public var sharpe = 0.0
    public var sortino = 0.0
    /// Negative fraction, e.g. -0.59.
    public var maxDrawdown = 0.0
    /// Trading days from the peak to recovery (or to the end when not recovered).
    public var maxDrawdownDuration = 0
    public var calmar = 0.0
    public var alpha = 0.0
    public var beta = 0.0
    public var winRate = 0.0
    public var profitFactor = 0.0
    public var tradeCount = 0
    public var exposure = 0.0

    public init() {}

    private var doubles: [Double] {
        [totalReturn, cagr, volatility, sharpe, sortino, maxDrawdown, calmar, alpha, beta, winRate, profitFactor, exposure]
    }

    public static func == (a: Metrics, b: Metrics) -> Bool {
        a.maxDrawdownDuration == b.maxDrawdownDuration && a.tradeCount == b.tradeCount
            && zip(a.doubles, b.doubles).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(maxDrawdownDuration)
        hasher.combine(tradeCount)
        // NaN hashes as one value and -0 as 0, as == compares them.
        for value in doubles { hasher.combine(value.isNaN ? Double.nan.bitPattern : (value == 0 ? 0 : value.bitPattern)) }
    }
}

/// Where the time went and what the data layer did, for one backtest or a whole batch.
public struct RunStatistics: Sendable, Hashable {
    public var totalMs = 0.0
    public var analysisMs = 0.0
    public var dataMs = 0.0
    public var indicatorsMs = 0.0
    public var simulationMs = 0.0
    public var barsProcessed = 0
    public var cacheHits = 0
    public var cacheMisses = 0
    public var apiCalls = 0
    public var indicatorSeries = 0
    public var indicatorSeriesComputed = 0
    /// "v2" or "reference".
    public var engine = ""
    /// "alpaca", "files" or "demo".
    public var dataSource = ""
    /// Batches only.
    public var variantsPerSecond = 0.0

    public init() {}

    /// hits / (hits + misses); 0 when nothing was looked up.
    public var cacheHitRate: Double {
        cacheHits + cacheMisses == 0 ? 0 : Double(cacheHits) / Double(cacheHits + cacheMisses)
    }
}

public struct BacktestResult: Sendable, Hashable {
    public var strategyName: String
    /// The simulated trading days.
    public var dates: [TradingDate]
    /// Total equity at each date's close.
    public var equity: [Double]
    /// Buy-and-hold benchmark equity at each date's close.
    public var benchmark: [Double]
    public var orders: [Order]
    public var metrics: Metrics
    public var benchmarkMetrics: Metrics
    /// What a person should know about this result (typed: check `kind`, show `message`), in
    /// order: the data layer's, the calendar's, each ticker's, the simulation's.
    public var warnings: [BacktestWarning]
    public var stats: RunStatistics
    public var initialCapital: Double
    public var benchmarkTicker: String
    public var dataSource: String

    public init(
        strategyName: String, dates: [TradingDate], equity: [Double], benchmark: [Double], orders: [Order],
        metrics: Metrics, benchmarkMetrics: Metrics, warnings: [BacktestWarning], stats: RunStatistics,
        initialCapital: Double, benchmarkTicker: String, dataSource: String
    ) {
        self.strategyName = strategyName
        self.dates = dates
        self.equity = equity
        self.benchmark = benchmark
        self.orders = orders
        self.metrics = metrics
        self.benchmarkMetrics = benchmarkMetrics
        self.warnings = warnings
        self.stats = stats
        self.initialCapital = initialCapital
        self.benchmarkTicker = benchmarkTicker
        self.dataSource = dataSource
    }

    public var finalEquity: Double { equity.last ?? initialCapital }
}
