import BacktestCache
import BacktestCore
import BacktestEngine
import BacktestModel
import Foundation
import MarketData

extension BacktestPipeline {
    /// GetIndicators: the values of indicator series on one ticker, through the backtests' own
    /// data path: one query from the source's data epoch (so values do not depend on the window),
    /// inside one cache session, with the series read from the indicator cache or computed by
    /// `IndicatorCalculator` and stored, exactly as `prepare` does for a strategy's series; then
    /// cut to [start, end].
    ///
    /// Throws INVALID_ARGUMENT naming `get_indicators.ticker`, `get_indicators.series[i]`,
    /// `get_indicators.series` (none, or more than `IndicatorsRequest.maximumSeries`) or
    /// `get_indicators.end_date` (before the start); NOT_FOUND (`get_indicators.ticker`) when the
    /// source has no data for the ticker at all (a ticker with bars only outside the window gets an
    /// empty answer); RESOURCE_EXHAUSTED (`get_indicators.series`)
    /// when the answer would carry more than `IndicatorsRequest.maximumValues` values; the data
    /// layer's errors as for backtests.
    /// `maximumValues` is the answer's bound (tests lower it).
    package func indicators(
        _ request: IndicatorsRequest, maximumValues: Int = IndicatorsRequest.maximumValues
    ) async throws(BacktestError) -> IndicatorsResult {
        let (ticker, keys) = try Self.validate(request)
        let today = NewYorkTime.date(unixSeconds: Int64(Date().timeIntervalSince1970))
        let end = request.end ?? max(today, source.dataEpoch)
        // Without a start, from the epoch (or from `end`, when that is earlier: an empty window).
        let start = request.start ?? min(source.dataEpoch, end)
        let range = min(source.dataEpoch, start)...end
        let query = BarQuery(symbols: [ticker], range: range, adjustment: request.adjustment)
        let settings = BacktestSettings(start: start, end: end, adjustment: request.adjustment, benchmark: ticker)
        let ((bars, found, indicators), _) = try await withCacheSession { session throws(BacktestError) in
            let bars: BarSet
            do {
                bars = try await dailyBars(query, session: session)
            } catch {
                var failure = BacktestPipeline.dataError(error)
                if failure.field == "symbols" { failure.field = "get_indicators.ticker" }
                throw failure
            }
            guard let history = bars.bars[ticker], !history.isEmpty else {
                // Listed after `end`? Then the window is simply empty; a ticker the source has no
                // data for at all is NOT_FOUND, as a typo should be (the backtests' rule).
                let wide = BarQuery(symbols: [ticker], range: source.dataEpoch...max(today, end), adjustment: request.adjustment)
                if let later = try? await source.dailyBars(wide), later.bars[ticker].map({ !$0.isEmpty }) == true {
                    return (bars, nil as DailyBars?, IndicatorStore())
                }
                throw BacktestError(
                    .notFound, "no data from \(source.name) for \(ticker)",
                    field: "get_indicators.ticker")
            }
            let snapshot = MarketSnapshot(bars: [ticker: history], source: source.name)
            let indicators = try await computeIndicators(keys, snapshot: snapshot, settings: settings, session: session)
            return (bars, history as DailyBars?, indicators)
        }
        let warnings = bars.warnings.filter { !BarSet.isListingWarning($0, of: ticker) }
        guard let history = found else {
            return IndicatorsResult(
                ticker: ticker, adjustment: request.adjustment, dates: [], close: [],
                series: keys.map { IndicatorSeriesValues(key: $0.spec.canonicalKey, values: []) }, dataSource: source.name,
                warnings: warnings)
        }
        let lower = history.lowerBound(start)
        let upper = max(lower, history.lowerBound(end.advanced(by: 1)))
        let window = lower..<upper
        let cells = window.count * (keys.count + 1)
        guard cells <= maximumValues else {
            throw BacktestError(
                .resourceExhausted,
                "\(window.count) dates x \(keys.count + 1) series is \(cells) values, above the limit of \(maximumValues); ask for fewer series or a shorter window",
                field: "get_indicators.series")
        }
        var series: [IndicatorSeriesValues] = []
        for key in keys {
            let values = indicators[key] ?? IndicatorCalculator.compute(key, bars: history)
            series.append(IndicatorSeriesValues(key: key.spec.canonicalKey, values: Array(values[window])))
        }
        return IndicatorsResult(
            ticker: ticker, adjustment: request.adjustment, dates: Array(history.dates[window]),
            close: Array(history.close[window]), series: series, dataSource: source.name, warnings: warnings)
    }

    /// The request's ticker and its series, normalized and without duplicates (first kept).
    static func validate(_ request: IndicatorsRequest) throws(BacktestError) -> (String, [IndicatorKey]) {
        let ticker = try Ticker(validating: request.ticker, field: "get_indicators.ticker").symbol
        guard !request.series.isEmpty else {
            throw .invalidArgument("name at least one series, e.g. sma:50", field: "get_indicators.series")
        }
        guard request.series.count <= IndicatorsRequest.maximumSeries else {
            throw .invalidArgument(
                "at most \(IndicatorsRequest.maximumSeries) series per call, not \(request.series.count)",
                field: "get_indicators.series")
        }
        if let start = request.start, let end = request.end, end < start {
            throw .invalidArgument("end date \(end) is before start date \(start)", field: "get_indicators.end_date")
        }
        var keys: [IndicatorKey] = []
        var seen = Set<String>()
        for (index, text) in request.series.enumerated() {
            let field = "get_indicators.series[\(index)]"
            guard text.utf8.count <= 100 else {
                throw .invalidArgument("a series key has at most 100 characters, not \(text.utf8.count)", field: field)
            }
            let key: IndicatorKey
            do throws(BacktestError) {
                key = try IndicatorKey(ticker: ticker, key: text, field: field)
            } catch {
                // The key is one string: its sub-paths (".type", ".params[0]") name nothing the client sent.
                var error = error
                error.field = field
                throw error
            }
            if seen.insert(key.spec.canonicalKey).inserted { keys.append(key) }
        }
        return (ticker, keys)
    }
}
