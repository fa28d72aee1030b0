import BacktestCore

/// A calendar month, the unit in which bars are cached (one key per source, adjustment, ticker
/// and month: ~21 bars, 1.2 KB; a 20-year backtest reads ~250 keys per ticker in one MGET).
package struct CacheMonth: Hashable, Comparable, Sendable, CustomStringConvertible {
    package let year: Int
    package let month: Int

    package init(_ date: TradingDate) {
        year = date.year
        month = date.month
    }

    package init(year: Int, month: Int) {
        self.year = year
        self.month = month
    }

    package var firstDay: TradingDate { TradingDate(year: year, month: month, day: 1)! }
    package var lastDay: TradingDate {
        TradingDate(year: year, month: month, day: TradingDate.daysInMonth(year: year, month: month))!
    }
    package var next: CacheMonth { month == 12 ? CacheMonth(year: year + 1, month: 1) : CacheMonth(year: year, month: month + 1) }
    /// 202008
    package var number: Int { year * 100 + month }
    package var description: String { String(number) }

    package static func < (lhs: CacheMonth, rhs: CacheMonth) -> Bool { lhs.number < rhs.number }

    /// Every month touching `range`, ascending.
    package static func months(in range: ClosedRange<TradingDate>) -> [CacheMonth] {
        var result: [CacheMonth] = []
        var month = CacheMonth(range.lowerBound)
        let last = CacheMonth(range.upperBound)
        while month <= last {
            result.append(month)
            month = month.next
        }
        return result
    }
}

/// The cached bars of one ticker in one month: every bar dated from the month's first day through
/// `completeThrough` (never later than T-2 when written). An empty chunk is a cached fact too:
/// "no bars in these days" (before a listing, after a delisting), so such tickers cost no fetch.
struct MonthOfBars: Sendable, Equatable {
    var month: CacheMonth
    var completeThrough: TradingDate
    var bars: DailyBars

    /// Can this chunk answer the days `needed` of its month?
    func covers(through needed: TradingDate) -> Bool { needed <= completeThrough }

    /// Approximate heap size, for the in-process LRU's byte budget.
    var byteSize: Int { 64 + bars.count * 60 }

    /// The value to store under `key` (the key's identity is sealed into it).
    func encoded(key: String) -> [UInt8] {
        var body: [UInt8] = []
        body.reserveCapacity(8 + bars.count * 60)
        body.appendLittleEndian(Int32(month.number))
        body.appendLittleEndian(completeThrough.daysSinceEpoch)
        for date in bars.dates { body.appendLittleEndian(date.daysSinceEpoch) }
        for column in [bars.open, bars.high, bars.low, bars.close, bars.volume, bars.dividend, bars.splitRatio] {
            body.appendLittleEndian(column)
        }
        return PackedValue.seal(kind: .monthOfBars, count: bars.count, key: key, body: body)
    }

    /// Nil for anything that is not exactly a valid chunk of `month` written under `key`
    /// (corrupt, truncated, another format, or another key's value).
    static func decode(_ bytes: [UInt8], symbol: String, month: CacheMonth, key: String) -> MonthOfBars? {
        guard let (count, body) = PackedValue.open(bytes, kind: .monthOfBars, key: key),
              body.count == 8 + count * 4 + count * 7 * 8,
              Int(body.readLittleEndian(Int32.self, at: 0)) == month.number
        else { return nil }
        let completeThrough = TradingDate(daysSinceEpoch: body.readLittleEndian(Int32.self, at: 4))
        guard completeThrough >= month.firstDay, completeThrough <= month.lastDay else { return nil }
        var dates: [TradingDate] = []
        dates.reserveCapacity(count)
        for i in 0..<count {
            let date = TradingDate(daysSinceEpoch: body.readLittleEndian(Int32.self, at: 8 + i * 4))
            guard date >= month.firstDay, date <= completeThrough, dates.last.map({ $0 < date }) ?? true else { return nil }
            dates.append(date)
        }
        var columns: [[Double]] = []
        var offset = 8 + count * 4
        for _ in 0..<7 {
            columns.append(body.readDoubles(at: offset, count: count))
            offset += count * 8
        }
        let bars = DailyBars(
            symbol: symbol, dates: dates, open: columns[0], high: columns[1], low: columns[2],
            close: columns[3], volume: columns[4], dividend: columns[5], splitRatio: columns[6])
        return MonthOfBars(month: month, completeThrough: completeThrough, bars: bars)
    }
}

/// A cached indicator series: one value per trading date of `dates` (NaN allowed, e.g. warm-up).
struct PackedSeries {
    static func encode(_ values: [Double], from: TradingDate, through: TradingDate, key: String) -> [UInt8] {
        var body: [UInt8] = []
        body.reserveCapacity(8 + values.count * 8)
        body.appendLittleEndian(from.daysSinceEpoch)
        body.appendLittleEndian(through.daysSinceEpoch)
        body.appendLittleEndian(values)
        return PackedValue.seal(kind: .series, count: values.count, key: key, body: body)
    }

    static func decode(_ bytes: [UInt8], from: TradingDate, through: TradingDate, key: String) -> [Double]? {
        guard let (count, body) = PackedValue.open(bytes, kind: .series, key: key),
              body.count == 8 + count * 8,
              body.readLittleEndian(Int32.self, at: 0) == from.daysSinceEpoch,
              body.readLittleEndian(Int32.self, at: 4) == through.daysSinceEpoch
        else { return nil }
        return body.readDoubles(at: 8, count: count)
    }
}
