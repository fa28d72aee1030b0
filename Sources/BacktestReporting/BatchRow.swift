import BacktestCore
import BacktestModel
import Foundation

/// What a batch table keeps of one finished variant: the numbers it shows, not the equity curve
/// (a batch of thousands of variants would otherwise hold every curve until the end).
public struct VariantSummary: Sendable, Hashable {
    public var strategyName: String
    public var metrics: Metrics
    public var finalEquity: Double
    public var orderCount: Int
    public var warnings: [String]

    public init(_ result: BacktestResult) {
        strategyName = result.strategyName
        metrics = result.metrics
        finalEquity = result.finalEquity
        orderCount = result.orders.count
        warnings = result.warnings
    }
}

/// One variant's line in a batch table.
public struct BatchRow: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        case running
        case done(VariantSummary)
        case failed(BacktestError)
    }

    public var index: Int
    public var label: String
    public var state: State

    public var summary: VariantSummary? {
        if case .done(let summary) = state { return summary }
        return nil
    }

    public var isFinished: Bool {
        if case .running = state { return false }
        return true
    }
}

/// A metric a final batch table can be sorted by; the raw values are the `--sort-by` names and
/// the CSV column names.
public enum BatchMetric: String, CaseIterable, Sendable {
    case totalReturn = "total_return"
    case cagr
    case volatility
    case sharpe
    case sortino
    case maxDrawdown = "max_drawdown"
    case calmar
    case alpha
    case beta
    case winRate = "win_rate"
    case profitFactor = "profit_factor"
    case tradeCount = "trade_count"
    case exposure
    case finalEquity = "final_equity"

    /// A `--sort-by` name: the raw value, any case, with "-" for "_" ("max-drawdown", "Sharpe").
    public init?(name: String) {
        self.init(rawValue: name.lowercased().replacingOccurrences(of: "-", with: "_"))
    }

    /// Best first means descending for most metrics. Max drawdown is a negative fraction, so the
    /// best (shallowest) is the largest too; only volatility is better small.
    public var higherIsBetter: Bool {
        self != .volatility
    }

    public func value(_ summary: VariantSummary) -> Double {
        let m = summary.metrics
        return switch self {
        case .totalReturn: m.totalReturn
        case .cagr: m.cagr
        case .volatility: m.volatility
        case .sharpe: m.sharpe
        case .sortino: m.sortino
        case .maxDrawdown: m.maxDrawdown
        case .calmar: m.calmar
        case .alpha: m.alpha
        case .beta: m.beta
        case .winRate: m.winRate
        case .profitFactor: m.profitFactor
        case .tradeCount: Double(m.tradeCount)
        case .exposure: m.exposure
        case .finalEquity: summary.finalEquity
        }
    }

    /// The value as the tables print it.
    public func text(_ summary: VariantSummary) -> String {
        switch self {
        case .totalReturn, .cagr, .volatility, .maxDrawdown, .winRate, .exposure: Format.percent(value(summary))
        case .tradeCount: "\(summary.metrics.tradeCount)"
        case .finalEquity: Format.money(summary.finalEquity)
        default: Format.number(value(summary))
        }
    }

    /// Room for typical values ("-100.00%", "-12.345", "$1,234,567.89"), so columns keep their
    /// width while a live table fills in.
    public var minimumWidth: Int {
        switch self {
        case .totalReturn, .cagr, .volatility, .maxDrawdown, .winRate, .exposure: 8
        case .tradeCount: 6
        case .finalEquity: 13
        default: 7
        }
    }

    /// Column title in the terminal table.
    public var title: String {
        switch self {
        case .totalReturn: "return"
        case .cagr: "CAGR"
        case .volatility: "vol"
        case .sharpe: "Sharpe"
        case .sortino: "Sortino"
        case .maxDrawdown: "max DD"
        case .calmar: "Calmar"
        case .alpha: "alpha"
        case .beta: "beta"
        case .winRate: "win rate"
        case .profitFactor: "PF"
        case .tradeCount: "trades"
        case .exposure: "exposure"
        case .finalEquity: "final equity"
        }
    }
}
