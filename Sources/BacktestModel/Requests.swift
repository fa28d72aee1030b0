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
    public var variants: [Strategy]
    public var settings: BacktestSettings
    /// 0 = the server's default; the server never exceeds its own bound.
    public var maxParallel: Int

    public init(variants: [Strategy], settings: BacktestSettings, maxParallel: Int = 0) {
        self.variants = variants
        self.settings = settings
        self.maxParallel = maxParallel
    }
}
