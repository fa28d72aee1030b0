import BacktestCore

// The strategy model: the Swift twin of the strategy messages in proto/backtest.proto.
// BacktestProtocol converts between the two; the engine only ever sees these types.

/// When an order triggered by bar t's signal is filled.
public enum FillTiming: String, Sendable, Hashable, Codable, CaseIterable {
    /// At bar t+1's open: the signal needs bar t's close, so this is what a trader can really do.
    case nextOpen = "next_open"
    /// At bar t's close: optimistic, but the convention of many references.
    case close

    public static let `default` = FillTiming.nextOpen
}

/// Whether held positions are re-targeted to their weight while held.
public enum Rebalance: String, Sendable, Hashable, Codable, CaseIterable {
    case none, daily, weekly, monthly
}

public enum PriceField: String, Sendable, Hashable, Codable, CaseIterable {
    case open, high, low, close, volume
}

/// An indicator series by type, parameters and output, e.g. sma(50) or macd(12,26,9).signal.
public struct IndicatorSpec: Sendable, Hashable {
    public var type: String
    public var params: [Double]
    /// Empty = the indicator's primary output.
    public var output: String

    public init(type: String, params: [Double] = [], output: String = "") {
        self.type = type
        self.params = params
        self.output = output
    }
}

/// What a series is computed from.
public enum SeriesSource: Sendable, Hashable {
    case field(PriceField)
    case indicator(IndicatorSpec)
}

/// A time series on one ticker.
public struct SeriesRef: Sendable, Hashable {
    /// nil = the ticker of the position the condition belongs to.
    public var ticker: String?
    public var source: SeriesSource

    public init(ticker: String? = nil, source: SeriesSource) {
        self.ticker = ticker
        self.source = source
    }
}

public enum Operand: Sendable, Hashable {
    case number(Double)
    case series(SeriesRef)
}

public enum Comparison: String, Sendable, Hashable, Codable, CaseIterable {
    case greater = ">"
    case greaterOrEqual = ">="
    case less = "<"
    case lessOrEqual = "<="
    case crossesAbove = "crosses_above"
    case crossesBelow = "crosses_below"
}

/// A boolean signal per bar. A comparison involving an undefined (warm-up or missing) value is
/// false.
public indirect enum Condition: Sendable, Hashable {
    case compare(lhs: Operand, op: Comparison, rhs: Operand)
    case all([Condition])
    case any([Condition])
    case not(Condition)
}

public struct Position: Sendable, Hashable {
    public var ticker: String
    /// Fraction of total equity, in (0, 1].
    public var weight: Double
    public var entry: Condition
    /// nil: exit when the entry condition turns false.
    public var exit: Condition?

    public init(ticker: String, weight: Double, entry: Condition, exit: Condition? = nil) {
        self.ticker = ticker
        self.weight = weight
        self.entry = entry
        self.exit = exit
    }
}

public struct Strategy: Sendable, Hashable {
    public var name: String
    public var positions: [Position]
    public var fill: FillTiming
    public var commissionBps: Double
    public var slippageBps: Double
    public var rebalance: Rebalance
    /// Allows weights to sum above 1 (margin). Without it they must not.
    public var allowLeverage: Bool

    public init(
        name: String = "", positions: [Position], fill: FillTiming = .default, commissionBps: Double = 0,
        slippageBps: Double = 0, rebalance: Rebalance = .none, allowLeverage: Bool = false
    ) {
        self.name = name
        self.positions = positions
        self.fill = fill
        self.commissionBps = commissionBps
        self.slippageBps = slippageBps
        self.rebalance = rebalance
        self.allowLeverage = allowLeverage
    }
}

/// Settings shared by a single backtest and every variant of a batch.
public struct BacktestSettings: Sendable, Hashable {
    public static let defaultInitialCapital = 100_000.0
    public static let defaultBenchmark = "SPY"

    public var start: TradingDate
    public var end: TradingDate
    public var initialCapital: Double
    public var adjustment: PriceAdjustment
    public var benchmark: String

    public init(
        start: TradingDate, end: TradingDate, initialCapital: Double = defaultInitialCapital,
        adjustment: PriceAdjustment = .default, benchmark: String = defaultBenchmark
    ) {
        self.start = start
        self.end = end
        self.initialCapital = initialCapital
        self.adjustment = adjustment
        self.benchmark = benchmark
    }
}
