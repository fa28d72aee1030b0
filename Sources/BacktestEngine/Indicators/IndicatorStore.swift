import BacktestCore
import BacktestModel

/// Precomputed indicator series, each aligned with its ticker's bars in a `MarketSnapshot`.
///
/// The engines only read from a store; who fills it is up to the caller: `compute(_:snapshot:)`
/// for everything, or the server's cache filling what it has and `computeMissing` the rest.
/// A value type, so one store can be shared read-only by every variant of a batch.
package struct IndicatorStore: Sendable {
    package private(set) var series: [IndicatorKey: [Double]]

    package init(series: [IndicatorKey: [Double]] = [:]) {
        self.series = series
    }

    package subscript(key: IndicatorKey) -> [Double]? { series[key] }

    package var count: Int { series.count }

    package mutating func insert(_ values: [Double], for key: IndicatorKey) {
        series[key] = values
    }

    /// The keys of `keys` that the store does not hold, in order.
    package func missing(_ keys: some Sequence<IndicatorKey>) -> [IndicatorKey] {
        keys.filter { series[$0] == nil }
    }

    /// Computes and inserts every key of `keys` not yet held; returns how many were computed.
    /// Throws NOT_FOUND when a key's ticker is not in the snapshot.
    @discardableResult
    package mutating func computeMissing(
        _ keys: some Sequence<IndicatorKey>, snapshot: MarketSnapshot, cancellation: CancellationFlag? = nil
    ) throws(BacktestError) -> Int {
        var computed = 0
        for key in missing(keys) {
            try cancellation.check()
            guard let bars = snapshot.bars[key.ticker] else {
                throw BacktestError(.notFound, "no bars for \(key.ticker), needed by indicator \(key.spec.canonicalKey)")
            }
            series[key] = IndicatorCalculator.compute(key, bars: bars)
            computed += 1
        }
        return computed
    }

    /// A store holding every series of `keys`.
    package static func compute(_ keys: some Sequence<IndicatorKey>, snapshot: MarketSnapshot) throws(BacktestError) -> IndicatorStore {
        var store = IndicatorStore()
        try store.computeMissing(keys, snapshot: snapshot)
        return store
    }
}
