/// Daily bars of one symbol in columns: ascending dates, no duplicates, all columns the same
/// length. Columns rather than an array of bar structs because every consumer (indicators,
/// signals, the portfolio loop, the cache's packed values) walks one field over many days.
public struct DailyBars: Sendable, Equatable {
    public var symbol: String
    public var dates: [TradingDate]
    public var open: [Double]
    public var high: [Double]
    public var low: [Double]
    public var close: [Double]
    public var volume: [Double]
    /// Cash dividend per share on its ex-date, in that day's share terms; 0 on other days.
    public var dividend: [Double]
    /// Split ratio on its ex-date (2 = two-for-one, 0.1 = one-for-ten reverse); 1 on other days.
    public var splitRatio: [Double]

    public init(symbol: String) {
        self.symbol = symbol
        dates = []
        open = []
        high = []
        low = []
        close = []
        volume = []
        dividend = []
        splitRatio = []
    }

    public init(
        symbol: String, dates: [TradingDate], open: [Double], high: [Double], low: [Double],
        close: [Double], volume: [Double], dividend: [Double]? = nil, splitRatio: [Double]? = nil
    ) {
        precondition(
            [open.count, high.count, low.count, close.count, volume.count].allSatisfy { $0 == dates.count },
            "DailyBars columns must have one value per date")
        self.symbol = symbol
        self.dates = dates
        self.open = open
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume
        self.dividend = dividend ?? Array(repeating: 0, count: dates.count)
        self.splitRatio = splitRatio ?? Array(repeating: 1, count: dates.count)
    }

    public var count: Int { dates.count }
    public var isEmpty: Bool { dates.isEmpty }
    public var firstDate: TradingDate? { dates.first }
    public var lastDate: TradingDate? { dates.last }

    /// True when any split or dividend is recorded (the adjustment path has work to do).
    public var hasCorporateActions: Bool {
        dividend.contains { $0 != 0 } || splitRatio.contains { $0 != 1 }
    }

    public mutating func append(
        date: TradingDate, open: Double, high: Double, low: Double, close: Double, volume: Double,
        dividend: Double = 0, splitRatio: Double = 1
    ) {
        dates.append(date)
        self.open.append(open)
        self.high.append(high)
        self.low.append(low)
        self.close.append(close)
        self.volume.append(volume)
        self.dividend.append(dividend)
        self.splitRatio.append(splitRatio)
    }

    public mutating func reserveCapacity(_ capacity: Int) {
        dates.reserveCapacity(capacity)
        open.reserveCapacity(capacity)
        high.reserveCapacity(capacity)
        low.reserveCapacity(capacity)
        close.reserveCapacity(capacity)
        volume.reserveCapacity(capacity)
        dividend.reserveCapacity(capacity)
        splitRatio.reserveCapacity(capacity)
    }

    /// Index of the first date >= `date` (binary search); `count` when there is none.
    public func lowerBound(_ date: TradingDate) -> Int {
        var low = 0
        var high = dates.count
        while low < high {
            let mid = (low + high) / 2
            if dates[mid] < date { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// Index of `date`, or nil when there is no bar on that day.
    public func index(of date: TradingDate) -> Int? {
        let i = lowerBound(date)
        return i < dates.count && dates[i] == date ? i : nil
    }

    /// The bars whose dates fall in `range`.
    public func slice(_ range: ClosedRange<TradingDate>) -> DailyBars {
        let from = lowerBound(range.lowerBound)
        let to = lowerBound(range.upperBound.advanced(by: 1))
        return slice(indices: from..<max(from, to))
    }

    public func slice(indices: Range<Int>) -> DailyBars {
        DailyBars(
            symbol: symbol, dates: Array(dates[indices]), open: Array(open[indices]),
            high: Array(high[indices]), low: Array(low[indices]), close: Array(close[indices]),
            volume: Array(volume[indices]), dividend: Array(dividend[indices]),
            splitRatio: Array(splitRatio[indices]))
    }

    /// Bars of `self` and `other` merged by date; on a date present in both, `other` wins.
    /// Used to stitch cached months and freshly fetched days together.
    public func merged(with other: DailyBars) -> DailyBars {
        if other.isEmpty { return self }
        if isEmpty { return other }
        if let last = lastDate, let first = other.firstDate, last < first {
            var result = self
            result.reserveCapacity(count + other.count)
            for i in 0..<other.count { result.appendRow(of: other, at: i) }
            return result
        }
        var result = DailyBars(symbol: symbol)
        result.reserveCapacity(count + other.count)
        var i = 0
        var j = 0
        while i < count || j < other.count {
            if j == other.count || (i < count && dates[i] < other.dates[j]) {
                result.appendRow(of: self, at: i)
                i += 1
            } else {
                if i < count && dates[i] == other.dates[j] { i += 1 }
                result.appendRow(of: other, at: j)
                j += 1
            }
        }
        return result
    }

    private mutating func appendRow(of bars: DailyBars, at i: Int) {
        append(
            date: bars.dates[i], open: bars.open[i], high: bars.high[i], low: bars.low[i],
            close: bars.close[i], volume: bars.volume[i], dividend: bars.dividend[i],
            splitRatio: bars.splitRatio[i])
    }
}
