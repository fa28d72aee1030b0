import BacktestCore
import BacktestModel
import Foundation
import Testing

@testable import BacktestEngine

/// One case of a reference fixture (shared/reference/backtests.json, Fixtures/vectorbt-stops.json):
/// the strategy file under "case" (named by its "id") and what the reference implementation
/// computed for it under "expected", decoded as `Expected`. The one loader of both fixtures.
struct ReferenceCase<Expected: Decodable> {
    var id: String
    var file: StrategyFile
    var expected: Expected

    /// The cases of the fixture at `url`: a JSON array of {"case", "expected"} objects, or with
    /// `listKey` such an array under that key of the root object.
    static func load(_ url: URL, listKey: String? = nil) throws -> [ReferenceCase] {
        let root = try JSONSerialization.jsonObject(with: try Data(contentsOf: url))
        let list: [[String: Any]]
        if let listKey {
            let object = try #require(root as? [String: Any])
            list = try #require(object[listKey] as? [[String: Any]])
        } else {
            list = try #require(root as? [[String: Any]])
        }
        return try list.map { entry in
            let caseObject = try #require(entry["case"] as? [String: Any])
            return ReferenceCase(
                id: caseObject["id"] as? String ?? "?",
                file: try StrategyFile.decode(try JSONSerialization.data(withJSONObject: caseObject)),
                expected: try JSONDecoder().decode(Expected.self, from: try JSONSerialization.data(withJSONObject: try #require(entry["expected"]))))
        }
    }

    /// The file's settings, over the file's own start and end.
    var settings: BacktestSettings {
        file.settings(defaults: BacktestSettings(start: file.start!, end: file.end!))
    }

    /// The shared data of the tickers the strategy needs (TestData).
    func snapshot() throws -> MarketSnapshot {
        let analysis = try StrategyAnalysis(strategy: file.strategy, settings: settings)
        return try TestData.snapshot(analysis.tickers)
    }

}

extension Metrics {
    /// The metrics the reference fixtures list, under their names there (empyrical's).
    var byReferenceName: [String: Double] {
        [
            "total_return": totalReturn, "cagr": cagr, "volatility": volatility, "sharpe": sharpe,
            "sortino": sortino, "max_drawdown": maxDrawdown, "calmar": calmar, "alpha": alpha, "beta": beta,
        ]
    }
}
