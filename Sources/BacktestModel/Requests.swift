import BacktestCore

// The requests of RunBacktest and RunBatch, as the service sees them (BacktestProtocol converts
// them from and to the wire).

/// RunBacktest's request: one strategy over a date range.
public struct BacktestRequest: Sendable, Hashable {
    public var strategy: Strategy
    public var settings: BacktestSettings

    public init(strategy: Strategy, settings: BacktestSettings) {
        self.strategy = strategy
        self.settings = settings
    }
}

/// RunBatch's request: variants sharing settings (and therefore data and indicators).
public struct BatchRequest: Sendable, Hashable {
    /// The variants, when the batch lists them (empty when `grid` is set).
    public var variants: [Strategy]
    public var settings: BacktestSettings
    /// 0 = the server's default; the server never exceeds its own bound.
    public var maxParallel: Int
    /// FULL or SUMMARY results; `.default` = FULL up to `ResultDetail.fullUpTo` variants.
    public var detail: ResultDetail
    /// Variants as a grid the server expands (instead of `variants`).
    public var grid: Grid?
    /// Variants that could not be decoded from the wire (an unknown enum value, a string with a
    /// control character, conditions nested too deep, ...), by index, with their INVALID_ARGUMENT
    /// naming the field (`run_batch.variants[i]...`); `variants[i]` is an empty placeholder for
    /// each. Each fails alone, as a variant failing validation does; the others run. Set by the
    /// decoder only: it is not encoded.
    public var invalidVariants: [Int: BacktestError] = [:]

    public init(variants: [Strategy], settings: BacktestSettings, maxParallel: Int = 0, detail: ResultDetail = .default) {
        self.variants = variants
        self.settings = settings
        self.maxParallel = maxParallel
        self.detail = detail
        grid = nil
    }

    /// A batch of the variants `grid` expands to.
    public init(grid: Grid, settings: BacktestSettings, maxParallel: Int = 0, detail: ResultDetail = .default) {
        variants = []
        self.settings = settings
        self.maxParallel = maxParallel
        self.detail = detail
        self.grid = grid
    }
}

/// GetVariantResults' request: FULL results of some variants of a retained batch, by index or
/// the best `count` by a metric.
public enum VariantSelection: Sendable, Hashable {
    case indices([Int])
    case best(SummaryMetric, count: Int)
}
