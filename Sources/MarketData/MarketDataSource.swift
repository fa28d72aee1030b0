import BacktestCore
import Foundation
import Logging

/// Which provider the server uses, from its configuration.
package enum MarketDataSource: Sendable {
    /// Alpaca's API (keys and URL from the environment, read by backtestd's configuration reader).
    case alpaca(AlpacaConfiguration)
    /// A directory of per-ticker CSV files.
    case files(directory: URL)
    /// Synthetic data, no network, no keys.
    case demo(seed: UInt64)

    /// Parses the server option: "alpaca", "demo", "demo:SEED", "files:PATH" (or a bare path to
    /// a directory). "alpaca" comes with default settings and no keys: the caller (backtestd's
    /// configuration reader) fills them in from the environment.
    package static func parse(_ text: String) throws(BacktestError) -> MarketDataSource {
        let lowered = text.lowercased()
        if lowered == "alpaca" { return .alpaca(AlpacaConfiguration(keyID: nil, secretKey: nil)) }
        if lowered == "demo" { return .demo(seed: DemoProvider.defaultSeed) }
        if lowered.hasPrefix("demo:") {
            guard let seed = UInt64(text.dropFirst(5)) else {
                throw .invalidArgument("demo seed '\(text.dropFirst(5))' is not a non-negative integer", field: "market-data")
            }
            return .demo(seed: seed)
        }
        let path = lowered.hasPrefix("files:") ? String(text.dropFirst(6)) : text
        guard !path.isEmpty, lowered.hasPrefix("files:") || path.contains("/") else {
            throw .invalidArgument("unknown market data source '\(text)': use alpaca, demo[:SEED] or files:DIRECTORY", field: "market-data")
        }
        return .files(directory: URL(fileURLWithPath: path, isDirectory: true))
    }

    /// The provider, wrapped in a `CoalescingProvider` so concurrent identical requests share
    /// one fetch.
    package func makeProvider(logger: Logger = Logger(label: "backtestd.marketdata")) throws(BacktestError) -> CoalescingProvider {
        switch self {
        case .alpaca(let configuration):
            if !configuration.hasCredentials {
                logger.warning("market data: Alpaca selected but APCA_API_KEY_ID / APCA_API_SECRET_KEY are not set; fetches will fail with UNAUTHENTICATED")
            }
            return CoalescingProvider(AlpacaProvider(configuration: configuration))
        case .files(let directory):
            return CoalescingProvider(try LocalFilesProvider(directory: directory))
        case .demo(let seed):
            return CoalescingProvider(DemoProvider(seed: seed))
        }
    }
}
