import BacktestCore
import BacktestEngine
import BacktestTestSupport
import Foundation

/// Shared market data loaded once per test process (parsing the CSVs is the slow part).
enum TestData {
    private static let cache = BarsCache()

    /// Split-adjusted bars of `ticker` from ../shared, as the references use them.
    static func bars(_ ticker: String) throws -> DailyBars {
        try cache.bars(ticker)
    }

    static func snapshot(_ tickers: [String]) throws -> MarketSnapshot {
        var bars: [String: DailyBars] = [:]
        for ticker in tickers { bars[ticker] = try Self.bars(ticker) }
        return MarketSnapshot(bars: bars, source: "files")
    }

    static func date(_ iso: String) -> TradingDate {
        TradingDate(iso: iso)!
    }

    /// Committed fixtures next to this file.
    static func fixture(_ name: String) throws -> Data {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures").appendingPathComponent(name)
        return try Data(contentsOf: url)
    }

    /// |actual - expected| <= tolerance x max(|expected|, 1): relative, and absolute near zero.
    static func close(_ actual: Double, _ expected: Double, tolerance: Double) -> Bool {
        if actual.isNaN || expected.isNaN { return actual.isNaN && expected.isNaN }
        if actual.isInfinite || expected.isInfinite { return actual == expected }
        return abs(actual - expected) <= tolerance * max(abs(expected), 1)
    }
}

private final class BarsCache: @unchecked Sendable {
    private let lock = NSLock()
    private var loaded: [String: DailyBars] = [:]

    func bars(_ ticker: String) throws -> DailyBars {
        lock.lock()
        defer { lock.unlock() }
        if let bars = loaded[ticker] { return bars }
        let bars = try SharedData.rawBars(ticker).adjusted(.split)
        loaded[ticker] = bars
        return bars
    }
}
