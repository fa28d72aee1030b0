import BacktestCore
import Synchronization

/// How the symbols of one query are split into `GET /v2/stocks/bars` requests that run side by
/// side, without spending more API calls than one request per `maxSymbolsPerRequest` symbols
/// followed through its pages (the sequential layout) would.
///
/// Why: a page holds at most `pageLimit` bars counted across all its symbols, and the pages of one
/// request come one after another (each needs the previous page's token). Ten tickers plus SPY
/// since 2016 are about 12,900 bars: two pages, so two vendor round trips in a row. How many daily
/// bars a symbol can have in a range is known before asking — at most one per trading day of the
/// market calendar, fewer where an earlier answer showed none (before a listing, after the last
/// bar) — so the symbols can be packed into requests that each fit one page ("longest first, into
/// the least filled request it fits"), and those sent concurrently: the same two calls, one round
/// trip.
///
/// The calendar bounds the bars from above only. A symbol listed inside the range has fewer, and
/// then the sequential layout might need fewer pages than the packing needs requests: packing on
/// the calendar alone would spend more calls (a range from 2005 over five symbols, one listed in
/// 2010, is two pages in a row but would be packed into three requests). So the packing is used
/// only when the sequential layout would certainly make at least as many calls: counted from the
/// bars earlier answers showed a symbol has (`lowerBound`). Until a symbol was fetched once in
/// this process its bars are uncertain, and its query is planned as the sequential layout.
struct AlpacaRequestPlan: Equatable, Sendable {
    /// Symbols of each request, sorted; every request is followed through its pages.
    var requests: [[String]]
    /// The most requests (pages included) the plan can make, by the estimates.
    var expectedCalls: Int

    init(requests: [[String]], expectedCalls: Int) {
        self.requests = requests
        self.expectedCalls = expectedCalls
    }

    /// Plans the requests for `symbols`.
    ///
    /// - Parameters:
    ///   - symbols: the query's symbols (sorted, unique).
    ///   - bars: the fewest and the most daily bars each symbol can have in the query's range
    ///     (`KnownSpans.bars(_:in:)`).
    ///   - pageLimit: bars per page, counted across a page's symbols (Alpaca: at most 10,000).
    ///   - maxSymbolsPerRequest: symbols one request may name.
    init(symbols: [String], bars: (String) -> ClosedRange<Int>, pageLimit: Int, maxSymbolsPerRequest: Int) {
        let limit = max(1, pageLimit)
        let cap = max(1, maxSymbolsPerRequest)
        let bounds = Dictionary(uniqueKeysWithValues: symbols.map { symbol in
            let range = bars(symbol)
            return (symbol, max(0, range.lowerBound)...max(0, range.upperBound))
        })
        let estimate = bounds.mapValues(\.upperBound)
        func pages(_ total: Int) -> Int { max(1, (total + limit - 1) / limit) }
        func pages(_ group: [String], _ bound: (String) -> Int) -> Int { pages(group.reduce(0) { $0 + bound($1) }) }

        // The sequential layout: consecutive chunks of `cap` symbols, each paged.
        let chunks = stride(from: 0, to: symbols.count, by: cap).map { Array(symbols[$0..<min($0 + cap, symbols.count)]) }
        requests = chunks
        expectedCalls = chunks.reduce(0) { $0 + pages($1) { estimate[$0]! } }
        // The calls the sequential layout makes at the least; the packing may not exceed them.
        let sequentialCalls = chunks.reduce(0) { $0 + pages($1) { bounds[$0]!.lowerBound } }
        guard symbols.count > 1, sequentialCalls > chunks.count else { return }  // nothing certain to gain

        // A symbol that alone fills more than a page is a request of its own, paged.
        let large = symbols.filter { estimate[$0]! > limit }
        let small = symbols.filter { estimate[$0]! <= limit }
            .sorted { (estimate[$0]!, $1) > (estimate[$1]!, $0) }  // longest first; ties by name
        let largeCalls = large.reduce(0) { $0 + pages(estimate[$1]!) }
        let smallTotal = small.reduce(0) { $0 + estimate[$1]! }
        var count = max((smallTotal + limit - 1) / limit, (small.count + cap - 1) / cap)
        while largeCalls + count <= sequentialCalls, count <= small.count {
            if let packed = Self.pack(small, into: count, limit: limit, cap: cap, estimate: estimate) {
                requests = (large.map { [$0] } + packed.map { $0.sorted() }).filter { !$0.isEmpty }
                expectedCalls = largeCalls + packed.count
                return
            }
            count += 1
        }
    }

    /// `items` (longest first), each into the least filled of `count` requests that has room;
    /// nil when one fits nowhere.
    private static func pack(_ items: [String], into count: Int, limit: Int, cap: Int,
                             estimate: [String: Int]) -> [[String]]? {
        guard count > 0 else { return items.isEmpty ? [] : nil }
        var groups = Array(repeating: [String](), count: count)
        var fill = Array(repeating: 0, count: count)
        for item in items {
            let size = estimate[item]!
            guard let target = groups.indices
                .filter({ fill[$0] + size <= limit && groups[$0].count < cap })
                .min(by: { (fill[$0], $0) < (fill[$1], $1) })
            else { return nil }
            groups[target].append(item)
            fill[target] += size
        }
        return groups
    }
}

/// What answers showed about each symbol's bars: asked over `asked`, it had `count` bars from
/// `first` to `last` (or none). That bounds how many bars it can have in a later range from both
/// sides (`bars(_:in:)`), which is what lets `AlpacaRequestPlan` pack requests without risking an
/// extra call. Kept per provider, in memory: a few dozen bytes a symbol.
final class KnownSpans: Sendable {
    private struct Span: Sendable {
        var asked: ClosedRange<TradingDate>
        /// First and last bar and the number of bars in `asked`; nil when it had none.
        var bars: (first: TradingDate, last: TradingDate, count: Int)?
    }

    private let spans = Mutex<[String: Span]>([:])
    private let calendar: MarketCalendar

    init(calendar: MarketCalendar) {
        self.calendar = calendar
    }

    /// The fewest and the most daily bars `symbol` can have in `range`. At most one a trading day,
    /// none where an answer showed none (before its first bar or after its last, within what was
    /// asked). At least the bars an answer showed inside `range`: its count less the trading days
    /// of its span outside `range`; 0 for what no answer covered.
    func bars(_ symbol: String, in range: ClosedRange<TradingDate>) -> ClosedRange<Int> {
        let days = tradingDays(range)
        guard let span = spans.withLock({ $0[symbol] }) else { return 0...days }
        guard let bars = span.bars else { return 0...(days - tradingDays(overlap(range, span.asked))) }
        var most = days
        if let before = Self.dates(span.asked.lowerBound, calendar.previousTradingDay(before: bars.first)) {
            most -= tradingDays(overlap(range, before))
        }
        if let after = Self.dates(calendar.nextTradingDay(after: bars.last), span.asked.upperBound) {
            most -= tradingDays(overlap(range, after))
        }
        let outside = tradingDays(bars.first...bars.last) - tradingDays(overlap(range, bars.first...bars.last))
        let least = min(max(0, bars.count - outside), most)
        return least...max(least, most)
    }

    /// Records what `answer` to a query of `symbols` over `range` shows. A symbol's newer record
    /// replaces an older one when it covers at least the same dates.
    func learn(from answer: BarSet, symbols: [String], range: ClosedRange<TradingDate>) {
        let learned = symbols.map { symbol -> (String, Span) in
            guard let bars = answer.bars[symbol], let first = bars.firstDate, let last = bars.lastDate else {
                return (symbol, Span(asked: range, bars: nil))
            }
            return (symbol, Span(asked: range, bars: (first, last, bars.count)))
        }
        spans.withLock { spans in
            for (symbol, span) in learned {
                if let known = spans[symbol], !(span.asked.lowerBound <= known.asked.lowerBound
                    && span.asked.upperBound >= known.asked.upperBound) { continue }
                spans[symbol] = span
            }
        }
    }

    private func tradingDays(_ range: ClosedRange<TradingDate>?) -> Int {
        range.map { calendar.tradingDayCount(in: $0) } ?? 0
    }

    private func overlap(_ a: ClosedRange<TradingDate>, _ b: ClosedRange<TradingDate>) -> ClosedRange<TradingDate>? {
        Self.dates(max(a.lowerBound, b.lowerBound), min(a.upperBound, b.upperBound))
    }

    /// `from...through`, or nil when it holds no date.
    private static func dates(_ from: TradingDate, _ through: TradingDate) -> ClosedRange<TradingDate>? {
        from <= through ? from...through : nil
    }
}
