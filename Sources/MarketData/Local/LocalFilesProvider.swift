import BacktestCore
import Foundation
import NIOPosix
import Synchronization

/// Daily bars from a directory of per-ticker CSV files (`AAPL.csv`, …) in the layouts
/// `DailyBarsCSV` reads: raw prices with `dividend_amount` / `split_coefficient` columns, or
/// plain `date,open,high,low,close,volume`. This is the format of ../shared/market-data/daily.
///
/// Each file is read once and kept in memory with its adjusted variants. Adjustment is applied
/// over the whole file and the result sliced to the query, so a price on a date is the same
/// whatever range is asked for (adjusted as of the newest row, as a vendor would).
/// A file name is only ever made from a checked `Ticker` (`BRK.B` reads `BRK.B.csv`), so no
/// request can name a path outside `directory`. A symbol without a file is missing.
package final class LocalFilesProvider: MarketDataProvider {
    package let name = "files"
    package let directory: URL
    package let dataEpoch: TradingDate

    private let calendar: MarketCalendar
    private let loaded = Mutex<[String: Entry]>([:])

    private struct Entry {
        var raw: DailyBars?
        var adjusted: [PriceAdjustment: DailyBars] = [:]
        /// What the file was when read (nil: no file), to notice an edit.
        var stamp: FileStamp?
        /// `ContentFingerprint` of the file's bytes ("none" without a file).
        var fingerprint: String
    }

    /// Size and modification time: a changed stamp means the file must be read again.
    private struct FileStamp: Equatable {
        var size: Int64
        var modifiedSeconds: Int
        var modifiedNanoseconds: Int
    }

    /// The canonical directory path: two servers reading different directories never share
    /// cached bars, two reading the same one (by whatever path) do.
    package var cacheIdentity: String { "files|\(directory.standardizedFileURL.resolvingSymlinksInPath().path)" }

    /// The content fingerprint of each symbol's file ("none" when it has none). Re-reads files
    /// whose size or modification time changed since they were read, so an edited file gets a
    /// new fingerprint (and new cache keys) without a restart.
    package func cacheFingerprints(_ symbols: [String]) async throws -> [String: String] {
        let tickers = try symbols.map { symbol throws(BacktestError) in try Ticker(validating: symbol, field: "symbols") }
        return try await Self.onReaderThread { [self] in
            var result: [String: String] = [:]
            for (symbol, ticker) in zip(symbols, tickers) {
                _ = try history(ticker, nil)
                result[symbol] = loaded.withLock { $0[ticker.symbol]?.fingerprint } ?? "none"
            }
            return result
        }
    }

    /// Threads for reading and parsing files, one per core, for every provider of the process.
    /// A first read is blocking file I/O plus parsing and adjusting decades of rows (a second or
    /// more per ticker in a debug build): on Swift's cooperative pool (a thread per core, shared
    /// by every task of the server) a 20-ticker query would hold it and stall every other call.
    private static let readers: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: ProcessInfo.processInfo.activeProcessorCount)
        pool.start()
        return pool
    }()

    /// Runs `work` on a reader thread; the calling task waits, suspended. The pool is never shut
    /// down, so the work always runs.
    private static func onReaderThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await readers.runIfActive(work)
    }

    /// Fails with FAILED_PRECONDITION when `directory` does not exist. `dataEpoch` defaults to
    /// the earliest first date of the files (1999-11-01 for the shared data).
    package init(directory: URL, dataEpoch: TradingDate? = nil, calendar: MarketCalendar = .nyse) throws(BacktestError) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw BacktestError(.failedPrecondition, "market data directory \(directory.path) does not exist")
        }
        self.directory = directory
        self.calendar = calendar
        self.dataEpoch = dataEpoch ?? Self.earliestDate(in: directory) ?? TradingDate(year: 1999, month: 11, day: 1)!
    }

    package func dailyBars(_ query: BarQuery) async throws -> BarSet {
        let tickers = try query.symbols.map { symbol throws(BacktestError) in try Ticker(validating: symbol, field: "symbols") }
        // Off the cooperative pool: files may have to be read and parsed (see `readers`).
        return try await Self.onReaderThread { [self] in
            var result = BarSet()
            for ticker in tickers {
                result.add(ticker.symbol, history: try history(ticker, query.adjustment), range: query.range, calendar: calendar)
            }
            result.normalize()
            return result
        }
    }

    /// The whole file of `ticker`, adjusted (raw when `adjustment` is nil); nil when there is no
    /// file. A file changed on disk since it was read is read again.
    private func history(_ ticker: Ticker, _ adjustment: PriceAdjustment?) throws(BacktestError) -> DailyBars? {
        let symbol = ticker.symbol
        let url = fileURL(ticker)
        let stamp = Self.stamp(url)
        if let entry = loaded.withLock({ $0[symbol] }), entry.stamp == stamp {
            guard let raw = entry.raw else { return nil }
            guard let adjustment else { return raw }
            if let bars = entry.adjusted[adjustment] { return bars }
            let bars = raw.adjusted(adjustment)
            loaded.withLock { $0[symbol]?.adjusted[adjustment] = bars }
            return bars
        }
        var raw: DailyBars?
        var fingerprint = "none"
        if stamp != nil {
            let data: Data
            do {
                data = try Data(contentsOf: url)
            } catch {
                throw BacktestError(.unavailable, "cannot read \(url.path)", cause: error)
            }
            fingerprint = ContentFingerprint.hex(data)
            guard let text = String(data: data, encoding: .utf8) else {
                throw BacktestError(.unavailable, "cannot read \(url.path): not UTF-8 text")
            }
            do {
                raw = try DailyBarsCSV.parse(text, symbol: symbol)
            } catch {
                // Name the file: "…/AAPL.csv: AAPL: line 12 (2014-01-16): close 0.0 is not …".
                throw BacktestError(error.code, "\(url.path): \(error.message)", field: error.field)
            }
        }
        let adjusted = adjustment.flatMap { raw?.adjusted($0) }
        loaded.withLock {
            var entry = Entry(raw: raw, stamp: stamp, fingerprint: fingerprint)
            if let adjustment, let adjusted { entry.adjusted[adjustment] = adjusted }
            $0[symbol] = entry
        }
        return adjustment == nil ? raw : adjusted
    }

    private static func stamp(_ url: URL) -> FileStamp? {
        var info = stat()
        guard stat(url.path, &info) == 0 else { return nil }
        #if canImport(Darwin)
        let modified = info.st_mtimespec
        #else
        let modified = info.st_mtim
        #endif
        return FileStamp(size: Int64(info.st_size), modifiedSeconds: Int(modified.tv_sec), modifiedNanoseconds: Int(modified.tv_nsec))
    }

    private func fileURL(_ ticker: Ticker) -> URL {
        directory.appendingPathComponent(ticker.symbol + ".csv")
    }

    /// The smallest first date over the CSV files, reading only each file's first lines.
    private static func earliestDate(in directory: URL) -> TradingDate? {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        var earliest: TradingDate?
        for name in names where name.hasSuffix(".csv") {
            guard let handle = FileHandle(forReadingAtPath: directory.appendingPathComponent(name).path) else { continue }
            defer { try? handle.close() }
            let head = String(decoding: handle.readData(ofLength: 512), as: UTF8.self)
            let lines = head.split(whereSeparator: \.isNewline)
            guard lines.count >= 2, let date = TradingDate(iso: lines[1].prefix(10)) else { continue }
            earliest = earliest.map { min($0, date) } ?? date
        }
        return earliest
    }
}
