import ArgumentParser
import BacktestClient
import BacktestCommandLine
import BacktestCore
import BacktestModel
import BacktestReporting
import Foundation

/// `backtest indicators --ticker T --series sma:50,rsi:14`: indicator values on request
/// (GetIndicators), computed by the server exactly as backtests compute them. Prints a table of
/// the last rows by default, all of them as CSV (`--csv`) or as JSON (`--json`, the shape of
/// shared/reference/indicators, `IndicatorDocument`).
struct IndicatorsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "indicators",
        abstract: "Show indicator values of one ticker (GetIndicators), as backtests compute them.",
        discussion: """
            Series use the strategies' key syntax, type[:params][:output]: sma:50, ema:20, rsi:14, \
            macd:12,26,9:signal, bbands:20,2:upper, atr:14, stddev:20, obv. Several go in one --series \
            separated by commas (a comma followed by a number continues the parameters), or in several \
            --series options. Without --start/--end the whole data range is shown; warm-up values are \
            null in JSON, empty in CSV and "-" in the table.
            """)

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var deadline: DeadlineOption

    @Option(help: "The ticker, e.g. AAPL.")
    var ticker: String
    @Option(help: ArgumentHelp("Series keys, comma-separated (repeatable), e.g. sma:50,rsi:14.", valueName: "keys"))
    var series: [String]
    @Option(help: "First date YYYY-MM-DD (default: the first bar of the data).")
    var start: String?
    @Option(help: "Last date YYYY-MM-DD (default: the last bar of the data).")
    var end: String?
    @Option(help: "Price adjustment: raw, split or all, as for backtests.")
    var adjustment: String = PriceAdjustment.default.rawValue
    @Flag(help: "Print JSON: {ticker, adjustment, dates, close, series: {KEY: [value or null]}}.")
    var json = false
    @Flag(help: "Print CSV: date,close,KEY... for every date (empty cells for warm-up).")
    var csv = false
    @Option(help: "Rows of the text table (the last ones).")
    var rows = 20

    func validate() throws {
        if json && csv { throw ValidationError("--json and --csv exclude each other") }
        if rows < 0 { throw ValidationError("--rows must be at least 0") }
    }

    func run() async throws {
        let request: IndicatorsRequest
        do {
            request = try makeRequest()
        } catch {
            throw reportFailure(error)
        }
        let client = try connection.makeClient(timeout: deadline.duration)
        let result: IndicatorsResult
        do {
            result = try await client.indicators(request, timeout: deadline.duration)
            await client.close()
        } catch {
            await client.close()
            throw reportFailure(error)
        }
        let document = IndicatorDocument(result)
        if json {
            Terminal.write(String(decoding: document.json(), as: UTF8.self) + "\n")
        } else if csv {
            Terminal.write(document.csv())
        } else {
            Terminal.write(document.table(rows: rows))
        }
    }

    /// The request; a date or an adjustment that does not parse is INVALID_ARGUMENT naming the
    /// request field it would fill.
    func makeRequest() throws(BacktestError) -> IndicatorsRequest {
        func date(_ text: String?, _ field: String) throws(BacktestError) -> TradingDate? {
            guard let text else { return nil }
            guard let date = TradingDate(iso: text) else {
                throw .invalidArgument("'\(text)' is not a date of the form YYYY-MM-DD", field: field)
            }
            return date
        }
        guard let adjustment = PriceAdjustment(rawValue: adjustment.lowercased()) else {
            throw .invalidArgument("adjustment must be raw, split or all, not '\(adjustment)'", field: "get_indicators.adjustment")
        }
        return IndicatorsRequest(
            ticker: ticker, series: IndicatorSeriesList.split(series),
            start: try date(start, "get_indicators.start_date"), end: try date(end, "get_indicators.end_date"),
            adjustment: adjustment)
    }
}
