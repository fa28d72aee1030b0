/// Something a person should know about a result that is not an error: synthetic data, a ticker
/// listed after the start, missing bars, a flat benchmark, orders that could not fill, an engine
/// fallback. Typed so that code checks `kind` (never the text), and carried unchanged from the
/// data layer and the engine through results, batch updates, the wire (`Warning` in
/// proto/backtest.proto) and the cache's assembled answers.
///
/// It lives in BacktestCore, beside `BacktestError`, because the data layer (MarketData,
/// BacktestCache) produces some of them and does not import the model; BacktestModel's results
/// carry it.
public struct BacktestWarning: Sendable, Hashable, CustomStringConvertible {
    /// What the warning is about; numbered as `WarningKind` in proto/backtest.proto.
    public enum Kind: Int32, Sendable, Hashable, CaseIterable, CustomStringConvertible {
        /// Not known: a warning from a server that sent only its text, or a kind newer than this
        /// code.
        case unspecified = 0
        /// The prices are synthetic (the demo source). No tickers, no dates.
        case demoData = 1
        /// A ticker's data starts after the first trading day of the range asked of the source
        /// (listed later). Tickers: [it]; dates: [first, last] date of its data in the range.
        case noDataBefore = 2
        /// The source has no data at all for these tickers in the range. Tickers: those;
        /// dates: [first, last] day of the range asked.
        case noData = 3
        /// The benchmark covers only part of the requested range, so the simulation does too.
        /// Tickers: [benchmark]; dates: [first, last] simulated day.
        case benchmarkRange = 4
        /// The benchmark's daily returns have no variance (flat, or a single day): alpha, beta
        /// and comparisons are meaningless. Tickers: [benchmark]; dates: none.
        case benchmarkFlat = 5
        /// A ticker has no bar before a day inside the simulated calendar; it trades only from
        /// then. Tickers: [it]; dates: [its first bar, the requested start].
        case startsLate = 6
        /// A ticker has no bar after a day inside the simulated calendar; held shares are valued
        /// at its last close. Tickers: [it]; dates: [its last bar, the requested end].
        case endsEarly = 7
        /// A ticker lacks bars on some days of the benchmark's calendar between its first and
        /// last bar. Tickers: [it]; dates: every such day.
        case missingBars = 8
        /// Orders of a ticker were dropped because it had no bar on the fill day. Tickers: [it];
        /// dates: [the first such day].
        case ordersNotFilled = 9
        /// The v2 engine failed unexpectedly and the reference engine answered. No tickers, no
        /// dates.
        case engineFallback = 10
        /// The window starts before an indicator has its first value (the source's data, from its
        /// epoch or the ticker's listing, is too short for the warm-up), so no signal using it is
        /// evaluated until then. Tickers: [the binding indicator's ticker]; dates: [the start,
        /// the indicator's first value].
        case indicatorWarmUp = 11
        /// Ratios of the result are undefined (a zero denominator up to rounding: no variance, no
        /// negative return, no drawdown) and reported as absent (NaN). No tickers, no dates.
        case metricsUndefined = 12
        /// `next_open` orders signalled on the last day, which no later open can fill. Tickers:
        /// those; dates: [the last day].
        case unfilledAtEnd = 13
        /// A position's ticker has data but no bar in the window: the position never trades.
        /// Tickers: [it]; dates: [first, last day of the window].
        case neverTrades = 14

        /// The proto enum's name, e.g. "WARNING_MISSING_BARS".
        public var description: String {
            switch self {
            case .unspecified: "WARNING_KIND_UNSPECIFIED"
            case .demoData: "WARNING_DEMO_DATA"
            case .noDataBefore: "WARNING_NO_DATA_BEFORE"
            case .noData: "WARNING_NO_DATA"
            case .benchmarkRange: "WARNING_BENCHMARK_RANGE"
            case .benchmarkFlat: "WARNING_BENCHMARK_FLAT"
            case .startsLate: "WARNING_STARTS_LATE"
            case .endsEarly: "WARNING_ENDS_EARLY"
            case .missingBars: "WARNING_MISSING_BARS"
            case .ordersNotFilled: "WARNING_ORDERS_NOT_FILLED"
            case .engineFallback: "WARNING_ENGINE_FALLBACK"
            case .indicatorWarmUp: "WARNING_INDICATOR_WARM_UP"
            case .metricsUndefined: "WARNING_METRICS_UNDEFINED"
            case .unfilledAtEnd: "WARNING_UNFILLED_AT_END"
            case .neverTrades: "WARNING_NEVER_TRADES"
            }
        }
    }

    public var kind: Kind
    /// The tickers concerned (see `Kind` for each kind's), upper-case symbols.
    public var tickers: [String]
    /// The dates concerned, ascending unless a kind says otherwise (see `Kind`).
    public var dates: [TradingDate]
    /// The text shown to a person; what the server sent as a plain string before warnings were
    /// typed, unchanged.
    public var message: String

    public init(_ kind: Kind, tickers: [String] = [], dates: [TradingDate] = [], message: String) {
        self.kind = kind
        self.tickers = tickers
        self.dates = dates
        self.message = message
    }

    public var description: String { message }
}
