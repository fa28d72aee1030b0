import BacktestCore
import Foundation

/// Where the shared market data and reference results live for tests and benchmarks.
///
/// `BACKTESTD_SHARED` wins; otherwise `../shared` next to the package root, as laid out in the
/// developers' guide (CI clones the project beside it). Nothing from there is copied into the
/// project.
package enum SharedData {
    package static let root: URL = {
        if let path = ProcessInfo.processInfo.environment["BACKTESTD_SHARED"], !path.isEmpty {
            return URL(fileURLWithPath: path, isDirectory: true)
        }
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared", isDirectory: true)
    }()

    /// The package root, found from this file's compile-time path (Sources/BacktestTestSupport/).
    package static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    package static var dailyDirectory: URL { root.appendingPathComponent("market-data/daily", isDirectory: true) }
    package static var referenceDirectory: URL { root.appendingPathComponent("reference", isDirectory: true) }

    /// Raw bars of `symbol` from market-data/daily, with their split and dividend columns.
    package static func rawBars(_ symbol: String) throws -> DailyBars {
        let url = dailyDirectory.appendingPathComponent("\(symbol).csv")
        let text = try String(contentsOf: url, encoding: .utf8)
        return try DailyBarsCSV.parse(text, symbol: symbol)
    }

    /// A JSON file under reference/, decoded.
    package static func reference<T: Decodable>(_ path: String, as type: T.Type) throws -> T {
        let data = try Data(contentsOf: referenceDirectory.appendingPathComponent(path))
        return try JSONDecoder().decode(T.self, from: data)
    }
}
