import BacktestCore

/// GetIndicators' request: the values of indicator series on one ticker over a window.
///
/// `series` holds keys as strategies write them ("sma:50", "macd:12,26,9:signal", see
/// `IndicatorSpec.init(parsing:field:)`); the service parses and validates them, naming
/// `get_indicators.series[i]` when one is bad.
public struct IndicatorsRequest: Sendable, Hashable {
    /// The ticker whose bars the indicators are computed on (`Ticker` syntax).
    public var ticker: String
    /// Series keys, in the order the answer lists them.
    public var series: [String]
    /// First date of the answer, inclusive; nil = the first bar of the source's data.
    public var start: TradingDate?
    /// Last date of the answer, inclusive; nil = the last bar of the source's data.
    public var end: TradingDate?
    /// How prices are adjusted before anything is computed on them (as for backtests).
    public var adjustment: PriceAdjustment

    public init(ticker: String, series: [String], start: TradingDate? = nil, end: TradingDate? = nil,
                adjustment: PriceAdjustment = .default) {
        self.ticker = ticker
        self.series = series
        self.start = start
        self.end = end
        self.adjustment = adjustment
    }
}

/// One indicator series of an `IndicatorsResult`: a value per date of the answer.
public struct IndicatorSeriesValues: Sendable, Hashable {
    /// The canonical key (`IndicatorSpec.canonicalKey`): "rsi" asked is "rsi:14" here.
    public var key: String
    /// One value per `IndicatorsResult.dates` entry; NaN where the indicator has no value (its
    /// warm-up, or a value its definition leaves undefined, e.g. percent_b of zero-width bands).
    public var values: [Double]

    public init(key: String, values: [Double]) {
        self.key = key
        self.values = values
    }
}

/// GetIndicators' answer: the ticker's bars in the window (dates and adjusted closes) and each
/// series asked for, computed as backtests compute them (over the source's whole history, then
/// cut to the window, so the window's first values carry no fresh warm-up).
public struct IndicatorsResult: Sendable, Hashable {
    public var ticker: String
    /// The adjustment applied.
    public var adjustment: PriceAdjustment
    /// The ticker's trading days in the window, ascending.
    public var dates: [TradingDate]
    /// The adjusted close of each date, in the account currency (USD).
    public var close: [Double]
    /// In the order asked, duplicates (same canonical key) once.
    public var series: [IndicatorSeriesValues]
    /// "alpaca", "files" or "demo".
    public var dataSource: String
    /// What a person should know about the values (e.g. synthetic demo prices).
    public var warnings: [BacktestWarning]

    public init(ticker: String, adjustment: PriceAdjustment, dates: [TradingDate], close: [Double],
                series: [IndicatorSeriesValues], dataSource: String = "", warnings: [BacktestWarning] = []) {
        self.ticker = ticker
        self.adjustment = adjustment
        self.dates = dates
        self.close = close
        self.series = series
        self.dataSource = dataSource
        self.warnings = warnings
    }
}

extension IndicatorsRequest {
    /// Most series keys one GetIndicators call answers.
    public static let maximumSeries = 32
    /// Most values (dates × (series + 1 for the close)) one answer carries: 8 bytes each, so an
    /// answer stays well inside the default 4 MiB frame (30 years of 32 series fit).
    public static let maximumValues = 400_000
}
