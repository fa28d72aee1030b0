import BacktestCore

extension BarSet {
    /// Adds what a source has for `symbol` (any span of dates, already adjusted) to the answer
    /// for `range`: the bars inside it, or the symbol as missing when there are none.
    ///
    /// A symbol whose data starts after the first trading day of the range (a range from before
    /// the listing) gets the data that exists and a warning saying so, rather than an error: a
    /// backtest "since 2005" of a 2010 listing is a reasonable question with a partial answer.
    mutating func add(
        _ symbol: String, history: DailyBars?, range: ClosedRange<TradingDate>,
        calendar: MarketCalendar = .nyse
    ) {
        guard let history else {
            missing.append(symbol)
            return
        }
        let inRange = history.slice(range)
        guard let first = inRange.firstDate, let last = inRange.lastDate else {
            missing.append(symbol)
            return
        }
        if let warning = Self.listingWarning(symbol, first: first, last: last, range: range, calendar: calendar) {
            warnings.append(warning)
        }
        bars[symbol] = inRange
    }

    /// The warning for a symbol whose bars start after the range's first trading day, or nil.
    /// Public so that a layer assembling answers from stored pieces (the cache) says the same
    /// thing as a fetch would: the warning follows from the bars, not from who delivered them.
    package static func listingWarning(
        _ symbol: String, first: TradingDate, last: TradingDate, range: ClosedRange<TradingDate>,
        calendar: MarketCalendar = .nyse
    ) -> BacktestWarning? {
        let firstTradingDay = calendar.isTradingDay(range.lowerBound)
            ? range.lowerBound : calendar.nextTradingDay(after: range.lowerBound)
        guard first > firstTradingDay else { return nil }
        return BacktestWarning(
            .noDataBefore, tickers: [symbol], dates: [first, last], message: "\(symbol): no data before \(first); using \(first)...\(last)")
    }

    /// Whether `warning` is the listing warning of `symbol` (whatever its dates).
    package static func isListingWarning(_ warning: BacktestWarning, of symbol: String) -> Bool {
        warning.kind == .noDataBefore && warning.tickers == [symbol]
    }

    /// Folds another answer into this one (for queries split across requests or sources).
    mutating func absorb(_ other: BarSet) {
        for (symbol, bars) in other.bars {
            self.bars[symbol] = self.bars[symbol].map { $0.merged(with: bars) } ?? bars
        }
        missing.append(contentsOf: other.missing)
        apiCalls += other.apiCalls
        warnings.append(contentsOf: other.warnings)
    }

    /// Missing symbols that another part of the answer did deliver are not missing.
    mutating func normalize() {
        missing = Array(Set(missing.filter { bars[$0] == nil })).sorted()
    }
}
