import BacktestCore
import BacktestModel
import CBacktestProto
import CProtobufC

// GetIndicators (issue 15): IndicatorsRequest and IndicatorsResult, both directions.

enum IndicatorConversion {
    static func adjustment(_ c: Backtest__V1__PriceAdjustment, path: String) throws -> PriceAdjustment {
        switch c {
        case BACKTEST__V1__PRICE_ADJUSTMENT__ADJUSTMENT_DEFAULT: .default
        case BACKTEST__V1__PRICE_ADJUSTMENT__ADJUSTMENT_RAW: .raw
        case BACKTEST__V1__PRICE_ADJUSTMENT__ADJUSTMENT_SPLIT: .split
        case BACKTEST__V1__PRICE_ADJUSTMENT__ADJUSTMENT_ALL: .all
        default: throw unknownEnum(c.rawValue, path, backtest__v1__price_adjustment__descriptor)
        }
    }

    static func adjustment(_ a: PriceAdjustment) -> Backtest__V1__PriceAdjustment {
        switch a {
        case .raw: BACKTEST__V1__PRICE_ADJUSTMENT__ADJUSTMENT_RAW
        case .split: BACKTEST__V1__PRICE_ADJUSTMENT__ADJUSTMENT_SPLIT
        case .all: BACKTEST__V1__PRICE_ADJUSTMENT__ADJUSTMENT_ALL
        }
    }

    /// An optional date: empty is nil, anything else must be YYYY-MM-DD (INVALID_ARGUMENT naming `path`).
    static func optionalDate(_ pointer: UnsafeMutablePointer<CChar>?, path: String) throws -> TradingDate? {
        let text = string(pointer)
        if text.isEmpty { return nil }
        guard let date = TradingDate(iso: text) else {
            throw BacktestError.invalidArgument("'\(text.prefix(64))' is not a date of the form YYYY-MM-DD", field: path)
        }
        return date
    }

    /// The request as sent; the keys and the ticker are validated by the service.
    static func request(_ c: UnsafePointer<Backtest__V1__IndicatorsRequest>, path: String) throws -> IndicatorsRequest {
        let m = c.pointee
        return IndicatorsRequest(
            ticker: string(m.ticker), series: scalars(m.series, m.n_series).map { string($0) },
            start: try optionalDate(m.start_date, path: join(path, "start_date")),
            end: try optionalDate(m.end_date, path: join(path, "end_date")),
            adjustment: try adjustment(m.adjustment, path: join(path, "adjustment")))
    }

    static func result(_ c: UnsafePointer<Backtest__V1__IndicatorsResult>, path: String) throws -> IndicatorsResult {
        let m = c.pointee
        let dates = try scalars(m.dates, m.n_dates).enumerated().map { i, packed in
            try ResultConversion.date(packed, join(path, "dates[\(i)]"))
        }
        let close = scalars(m.close, m.n_close)
        guard close.count == dates.count else {
            throw BacktestError.invalidArgument("\(close.count) closes for \(dates.count) dates", field: join(path, "close"))
        }
        let series = try messages(m.series, m.n_series) { s, index in
            let values = scalars(s.pointee.values, s.pointee.n_values)
            guard values.count == dates.count else {
                throw BacktestError.invalidArgument(
                    "\(values.count) values for \(dates.count) dates", field: join(path, "series[\(index)].values"))
            }
            return IndicatorSeriesValues(key: string(s.pointee.key), values: values)
        }
        let adjustment = try adjustment(m.adjustment, path: join(path, "adjustment"))
        return IndicatorsResult(
            ticker: string(m.ticker), adjustment: adjustment, dates: dates, close: close, series: series,
            dataSource: string(m.data_source),
            warnings: try ResultConversion.warnings(nil, 0, details: m.warnings, m.n_warnings, path: path))
    }
}

extension ScratchArena {
    func indicatorsRequest(_ r: IndicatorsRequest) -> UnsafeMutablePointer<Backtest__V1__IndicatorsRequest> {
        let m = message(PB.indicatorsRequest)
        m.pointee.ticker = cString(r.ticker)
        m.pointee.n_series = r.series.count
        m.pointee.series = strings(r.series)
        m.pointee.start_date = cString(r.start?.iso ?? "")
        m.pointee.end_date = cString(r.end?.iso ?? "")
        m.pointee.adjustment = IndicatorConversion.adjustment(r.adjustment)
        return m
    }

    func indicatorsResult(_ r: IndicatorsResult) -> UnsafeMutablePointer<Backtest__V1__IndicatorsResult> {
        let m = message(PB.indicatorsResult)
        m.pointee.ticker = cString(r.ticker)
        m.pointee.adjustment = IndicatorConversion.adjustment(r.adjustment)
        m.pointee.n_dates = r.dates.count
        m.pointee.dates = array(r.dates.map(\.yyyymmdd))
        m.pointee.n_close = r.close.count
        m.pointee.close = array(r.close)
        m.pointee.n_series = r.series.count
        m.pointee.series = messages(r.series) { series in
            let s = message(PB.indicatorSeriesValues)
            s.pointee.key = cString(series.key)
            s.pointee.n_values = series.values.count
            s.pointee.values = array(series.values)
            return s
        }
        m.pointee.data_source = cString(r.dataSource)
        m.pointee.n_warnings = r.warnings.count
        m.pointee.warnings = warningDetails(r.warnings)
        return m
    }
}
