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

/// Which way a position trades: `long` buys to open and sells to close; `short` sells borrowed
/// shares to open and buys them back to close (its quantity is negative while held).
public enum PositionDirection: String, Sendable, Hashable, Codable, CaseIterable {
    case long, short

    public static let `default` = PositionDirection.long
}

/// How many shares an entry (and a rebalance) asks for, at the fill point's reference price.
public enum SizingMode: String, Sendable, Hashable, Codable, CaseIterable {
    /// `weight` x total equity (the default; `size` unused).
    case weight
    /// `size` in cash (account currency), e.g. 10000.
    case cash
    /// `size` shares.
    case shares
    /// Risk-based: `size` is the fraction of total equity lost if the stop loss is hit, so
    /// shares = size x equity / (reference x stop_loss) (fraction stops) or
    /// size x equity / (stop_loss x ATR) (ATR stops). Needs `stop_loss`.
    case risk

    public static let `default` = SizingMode.weight
}

/// Why an order was placed. Entries and rebalancing trades are `entry` / `rebalance`; the others
/// close a position.
public enum OrderReason: String, Sendable, Hashable, Codable, CaseIterable {
    case entry
    case rebalance
    /// The position's exit condition (or its entry turning false).
    case signal
    case stopLoss = "stop_loss"
    case takeProfit = "take_profit"
    case trailingStop = "trailing_stop"
    /// `max_bars` bars after the entry.
    case time
}

/// Exits by price and time of one position, checked on every bar after the entry bar against
/// its open, high, low and close (vectorbt 1.2 `from_signals` with OHLC; README "Engine
/// semantics"). A level is a distance from the entry's fill price: a fraction of it, or, with
/// `atrPeriod`, a multiple of ATR(atrPeriod) on the entry's signal bar.
public struct PriceExits: Sendable, Hashable {
    /// Stop loss distance, > 0 (a fraction of the entry price below 1 for longs).
    public var stopLoss: Double?
    /// Take profit distance, > 0.
    public var takeProfit: Double?
    /// Trailing stop distance from the highest high since the entry (lowest low for shorts), > 0.
    public var trailingStop: Double?
    /// nil: the distances are fractions of the entry price; n: multiples of Wilder's ATR(n).
    public var atrPeriod: Int?
    /// Time exit: close the position at the fill point `maxBars` bars after the entry's (>= 1).
    public var maxBars: Int?

    public init(stopLoss: Double? = nil, takeProfit: Double? = nil, trailingStop: Double? = nil, atrPeriod: Int? = nil, maxBars: Int? = nil) {
        self.stopLoss = stopLoss
        self.takeProfit = takeProfit
        self.trailingStop = trailingStop
        self.atrPeriod = atrPeriod
        self.maxBars = maxBars
    }

    /// No price or time exit.
    public var isEmpty: Bool { stopLoss == nil && takeProfit == nil && trailingStop == nil && maxBars == nil }
    /// Whether a price level is set (stop loss, take profit or trailing stop).
    public var hasPriceLevel: Bool { stopLoss != nil || takeProfit != nil || trailingStop != nil }
}

public struct Position: Sendable, Hashable {
    public var ticker: String
    /// Fraction of total equity, in (0, 1] (at most 1 per position unless leverage is allowed
    /// for shorts; see Validation). Used by `SizingMode.weight` and by rebalancing.
    public var weight: Double
    public var entry: Condition
    /// nil: exit when the entry condition turns false.
    public var exit: Condition?
    public var direction: PositionDirection
    public var sizing: SizingMode
    /// Cash amount, share count or risked fraction of equity, by `sizing` (unused for `weight`).
    public var size: Double
    public var exits: PriceExits

    public init(
        ticker: String, weight: Double, entry: Condition, exit: Condition? = nil, direction: PositionDirection = .default,
        sizing: SizingMode = .default, size: Double = 0, exits: PriceExits = PriceExits()
    ) {
        self.ticker = ticker
        self.weight = weight
        self.entry = entry
        self.exit = exit
        self.direction = direction
        self.sizing = sizing
        self.size = size
        self.exits = exits
    }

    /// Whether the position uses none of issue 15's features (long, weight-sized, exits by
    /// signal only): the engines' plain path.
    public var isPlain: Bool { direction == .long && sizing == .weight && exits == PriceExits() && size == 0 }
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
