import BacktestCore
import BacktestTestSupport
import Foundation
import MarketData
import Testing

/// A source double that serves the real bars of shared/market-data/daily (adjusted as asked)
/// and records every query it receives, so tests can count what reached "the vendor".
final class SharedBarsProvider: MarketDataProvider, @unchecked Sendable {
    let name = "shared-test"
    let dataEpoch = TradingDate(iso: "1999-11-01")!
    private let lock = NSLock()
    private var recorded: [BarQuery] = []
    private static let rawLock = NSLock()
    nonisolated(unsafe) private static var raw: [String: DailyBars] = [:]

    var queries: [BarQuery] { lock.withLock { recorded } }
    var callCount: Int { lock.withLock { recorded.count } }

    func dailyBars(_ query: BarQuery) async throws -> BarSet {
        lock.withLock { recorded.append(query) }
        await Task.yield()
        var set = BarSet(apiCalls: 1)
        for symbol in query.symbols {
            try Ticker.validate(symbol, field: "symbols")
            guard let bars = try Self.rawBars(symbol) else {
                set.missing.append(symbol)
                continue
            }
            let sliced = bars.adjusted(query.adjustment).slice(query.range)
            if sliced.isEmpty { set.missing.append(symbol) } else { set.bars[symbol] = sliced }
        }
        return set
    }

    /// The expected answer for a query: straight from the CSV, no cache involved.
    static func expected(_ symbol: String, _ range: ClosedRange<TradingDate>, _ adjustment: PriceAdjustment = .split) throws -> DailyBars {
        try #require(try rawBars(symbol)).adjusted(adjustment).slice(range)
    }

    static func rawBars(_ symbol: String) throws -> DailyBars? {
        if let bars = rawLock.withLock({ raw[symbol] }) { return bars }
        let url = SharedData.dailyDirectory.appendingPathComponent("\(symbol).csv")
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let bars = try SharedData.rawBars(symbol)
        rawLock.withLock { raw[symbol] = bars }
        return bars
    }
}

func date(_ iso: String) -> TradingDate { TradingDate(iso: iso)! }
