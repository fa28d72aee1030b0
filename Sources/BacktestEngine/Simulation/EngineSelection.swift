import BacktestCore
import BacktestModel

/// Which engine answers a request: `USE_NEW_ENGINE=false` (or 0/no/off) selects the reference
/// engine for every request; otherwise (the default) the v2 engine runs and, when it fails
/// unexpectedly, the request is answered by the reference engine with a warning in the result
/// and a call to `log`.
///
/// Every warning of the result (flat benchmark, missing bars, fallback) is also passed to `log`,
/// so the server's log shows what the client is told.
///
/// "Unexpected" means an INTERNAL or UNKNOWN error: v2's own invariants broke. Errors about the
/// request or its data (INVALID_ARGUMENT, NOT_FOUND, ...) are the answer, whichever engine gives
/// them, so they are rethrown without a second attempt.
public struct EngineSelection: Sendable {
    public var useNewEngine: Bool
    public var primary: any BacktestRunner
    public var fallback: any BacktestRunner

    public init(useNewEngine: Bool = true, primary: any BacktestRunner = VectorEngine(), fallback: any BacktestRunner = ReferenceEngine()) {
        self.useNewEngine = useNewEngine
        self.primary = primary
        self.fallback = fallback
    }

    /// Reads `USE_NEW_ENGINE` from `environment` (pass ProcessInfo.processInfo.environment).
    public static func fromEnvironment(_ environment: [String: String]) -> EngineSelection {
        EngineSelection(useNewEngine: parseFlag(environment["USE_NEW_ENGINE"]) ?? true)
    }

    /// true/1/yes/on and false/0/no/off, any case; nil for anything else (the default applies).
    public static func parseFlag(_ text: String?) -> Bool? {
        switch text?.trimmingSpaces.lowercased() {
        case "true", "1", "yes", "on": true
        case "false", "0", "no", "off": false
        default: nil
        }
    }

    /// Runs `strategy` (already validated against `market.settings`) on the market prepared once
    /// for its request; every warning of the result is also passed to `log`.
    public func run(
        validated strategy: Strategy, market: PreparedMarket, indicators: IndicatorStore, log: (String) -> Void = { _ in }
    ) throws(BacktestError) -> BacktestResult {
        let result = try select(strategy, market: market, indicators: indicators)
        result.warnings.forEach { log($0.message) }
        return result
    }

    /// The stand-alone form: validates, prepares the market from `snapshot`, then runs.
    public func run(
        _ strategy: Strategy, settings: BacktestSettings, snapshot: MarketSnapshot, indicators: IndicatorStore,
        log: (String) -> Void = { _ in }
    ) throws(BacktestError) -> BacktestResult {
        try Validation.validate(strategy, settings: settings)
        let market = try PreparedMarket(settings: settings, snapshot: snapshot)
        return try run(validated: strategy, market: market, indicators: indicators, log: log)
    }

    private func select(
        _ strategy: Strategy, market: PreparedMarket, indicators: IndicatorStore
    ) throws(BacktestError) -> BacktestResult {
        guard useNewEngine else {
            return try fallback.run(validated: strategy, market: market, indicators: indicators)
        }
        do {
            return try primary.run(validated: strategy, market: market, indicators: indicators)
        } catch where error.code == .internal || error.code == .unknown {
            var result = try fallback.run(validated: strategy, market: market, indicators: indicators)
            result.warnings.append(BacktestWarning(
                .engineFallback,
                message: "the \(primary.name) engine failed (\(error)); answered by the \(fallback.name) engine"))
            return result
        }
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        var slice = Substring(self)
        while slice.first?.isWhitespace == true { slice.removeFirst() }
        while slice.last?.isWhitespace == true { slice.removeLast() }
        return String(slice)
    }
}
