import BacktestCore
import BacktestModel
import Foundation

/// What a batch table keeps of one finished variant: the numbers it shows, not the equity curve
/// (a batch of thousands of variants would otherwise hold every curve until the end).
package struct VariantSummary: Sendable, Hashable {
    package var strategyName: String
    package var metrics: Metrics
    package var finalEquity: Double
    package var orderCount: Int
    package var warnings: [String]

    package init(_ result: BacktestResult) {
        strategyName = result.strategyName
        metrics = result.metrics
        finalEquity = result.finalEquity
        orderCount = result.orders.count
        warnings = result.warnings.map(\.message)
    }
}

/// One variant's line in a batch table.
package struct BatchRow: Sendable, Equatable {
    package enum State: Sendable, Equatable {
        case running
        case done(VariantSummary)
        case failed(BacktestError)
    }

    package var index: Int
    package var label: String
    package var state: State

    package init(index: Int, label: String, state: State) {
        self.index = index
        self.label = label
        self.state = state
    }

    package var summary: VariantSummary? {
        if case .done(let summary) = state { return summary }
        return nil
    }

    package var isFinished: Bool {
        if case .running = state { return false }
        return true
    }
}

/// A metric a final batch table can be sorted by: the model's `SummaryMetric` (the same names,
/// parsing and ranking direction serve `--sort-by`, `--heatmap`, GetVariantResults and the CSV
/// column names), with what the tables add below.
package typealias BatchMetric = SummaryMetric

extension SummaryMetric {
    package func value(_ summary: VariantSummary) -> Double {
        value(metrics: summary.metrics, finalEquity: summary.finalEquity)
    }

    /// The value as the tables print it.
    package func text(_ summary: VariantSummary) -> String {
        switch self {
        case .totalReturn, .cagr, .volatility, .maxDrawdown, .winRate, .exposure: Format.percent(value(summary))
        case .tradeCount: "\(summary.metrics.tradeCount)"
        case .finalEquity: Format.money(summary.finalEquity)
        default: Format.number(value(summary))
        }
    }

    /// Room for typical values ("-100.00%", "-12.345", "$1,234,567.89"), so columns keep their
    /// width while a live table fills in.
    package var minimumWidth: Int {
        switch self {
        case .totalReturn, .cagr, .volatility, .maxDrawdown, .winRate, .exposure: 8
        case .tradeCount: 6
        case .finalEquity: 13
        default: 7
        }
    }

    /// Column title in the terminal table.
    package var title: String {
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
