/// Reads and writes daily bars as CSV, in the two layouts of shared/market-data/daily:
///
///     date,open,high,low,close,volume
///     date,open,high,low,close,volume,adjusted_close,dividend_amount,split_coefficient
///
/// Columns are found by header name, so their order does not matter and unknown columns are
/// ignored. `split_coefficient` 0 (some vendors' "no split") is read as 1.
public enum DailyBarsCSV {
    /// Parses a whole file. Errors name the line and the column at fault: INVALID_ARGUMENT for
    /// text that is not a CSV of bars, DATA_LOSS for values no bar may have (see `InvalidBar`).
    public static func parse(_ text: String, symbol: String) throws(BacktestError) -> DailyBars {
        var lines = text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true)
            .makeIterator()
        guard let headerLine = lines.next() else {
            throw .invalidArgument("\(symbol): CSV file is empty")
        }
        let header = fields(headerLine).map { String(decoding: $0, as: UTF8.self).lowercased() }
        func column(_ name: String, required: Bool = true) throws(BacktestError) -> Int? {
            if let index = header.firstIndex(of: name) { return index }
            if required { throw .invalidArgument("\(symbol): CSV header has no '\(name)' column") }
            return nil
        }
        let dateColumn = try column("date")!
        let openColumn = try column("open")!
        let highColumn = try column("high")!
        let lowColumn = try column("low")!
        let closeColumn = try column("close")!
        let volumeColumn = try column("volume")!
        let dividendColumn = try column("dividend_amount", required: false)
        let splitColumn = try column("split_coefficient", required: false)

        var bars = DailyBars(symbol: symbol)
        var lineNumbers: [Int] = []
        var lineNumber = 1
        while let line = lines.next() {
            lineNumber += 1
            let row = fields(line)
            if row.count == 1 && row[0].allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") }) {
                continue
            }
            guard row.count >= header.count else {
                throw .invalidArgument(
                    "\(symbol): line \(lineNumber) has \(row.count) fields, the header has \(header.count)")
            }
            func number(_ index: Int, _ name: String) throws(BacktestError) -> Double {
                let text = String(decoding: row[index], as: UTF8.self)
                guard let value = Double(text), value.isFinite else {
                    throw .invalidArgument("\(symbol): line \(lineNumber): \(name) '\(text)' is not a number")
                }
                return value
            }
            let dateText = String(decoding: row[dateColumn], as: UTF8.self)
            guard let date = TradingDate(iso: dateText) else {
                throw .invalidArgument("\(symbol): line \(lineNumber): '\(dateText)' is not a YYYY-MM-DD date")
            }
            if let last = bars.lastDate, date <= last {
                throw .invalidArgument(
                    "\(symbol): line \(lineNumber): date \(date) is not after the previous row's \(last)")
            }
            var split = try splitColumn.map { (i: Int) throws(BacktestError) in try number(i, "split_coefficient") } ?? 1
            if split == 0 { split = 1 }
            bars.append(
                date: date,
                open: try number(openColumn, "open"), high: try number(highColumn, "high"),
                low: try number(lowColumn, "low"), close: try number(closeColumn, "close"),
                volume: try number(volumeColumn, "volume"),
                dividend: try dividendColumn.map { (i: Int) throws(BacktestError) in try number(i, "dividend_amount") } ?? 0,
                splitRatio: split)
            lineNumbers.append(lineNumber)
        }
        // Values that parse but cannot be prices (0, negative, high < low, ...): the same rules
        // as every source (`DailyBars.validate`), with the line.
        if let bad = bars.firstInvalidBar() {
            throw BacktestError(
                .dataLoss,
                "\(symbol): line \(lineNumbers[bad.index]) (\(bad.date)): \(bad.column) \(bad.value) \(bad.reason)")
        }
        return bars
    }

    /// Writes the nine-column layout (raw prices plus actions), which `parse` reads back exactly.
    public static func render(_ bars: DailyBars) -> String {
        var text = "date,open,high,low,close,volume,dividend_amount,split_coefficient\n"
        for i in 0..<bars.count {
            text += "\(bars.dates[i].iso),\(bars.open[i]),\(bars.high[i]),\(bars.low[i]),\(bars.close[i]),"
            text += "\(bars.volume[i]),\(bars.dividend[i]),\(bars.splitRatio[i])\n"
        }
        return text
    }

    private static func fields(_ line: Substring.UTF8View.SubSequence) -> [Substring.UTF8View.SubSequence] {
        var trimmed = line
        if trimmed.last == UInt8(ascii: "\r") { trimmed = trimmed.dropLast() }
        return trimmed.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
    }
}
