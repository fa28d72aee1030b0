import BacktestCore
import BacktestModel
import CBacktestProto
import CProtobufC

// Sweep messages (issue 11): result detail, grids, GetVariantResults; both directions.

enum SweepConversion {
    static func detail(_ c: Backtest__V1__ResultDetail, path: String) throws -> ResultDetail {
        switch c {
        case BACKTEST__V1__RESULT_DETAIL__RESULT_DETAIL_DEFAULT: .default
        case BACKTEST__V1__RESULT_DETAIL__RESULT_DETAIL_SUMMARY: .summary
        case BACKTEST__V1__RESULT_DETAIL__RESULT_DETAIL_FULL: .full
        default: throw unknownEnum(c.rawValue, path, backtest__v1__result_detail__descriptor)
        }
    }

    static func detail(_ d: ResultDetail) -> Backtest__V1__ResultDetail {
        switch d {
        case .default: BACKTEST__V1__RESULT_DETAIL__RESULT_DETAIL_DEFAULT
        case .summary: BACKTEST__V1__RESULT_DETAIL__RESULT_DETAIL_SUMMARY
        case .full: BACKTEST__V1__RESULT_DETAIL__RESULT_DETAIL_FULL
        }
    }

    static func grid(_ c: UnsafePointer<Backtest__V1__Grid>, path: String) throws -> Grid {
        let m = c.pointee
        let base = try StrategyConversion.strategy(required(m.base_strategy, join(path, "base_strategy")), path: FieldPath(join(path, "base_strategy")))
        let axes = messages(m.axes, m.n_axes) { a, _ in
            GridAxis(path: string(a.pointee.path), values: scalars(a.pointee.values, a.pointee.n_values).map { string($0) },
                     range: string(a.pointee.range), zipGroup: Int(a.pointee.zip_group))
        }
        return Grid(base: base, axes: axes)
    }

    static func variantResultsRequest(_ c: UnsafePointer<Backtest__V1__VariantResultsRequest>) throws -> CallMethod {
        let m = c.pointee
        let id = string(m.batch_id)
        let indices = scalars(m.indices, m.n_indices).map(Int.init)
        let bestBy = string(m.best_by)
        if bestBy.isEmpty {
            guard m.best_count == 0 else {
                // best_count without best_by: the missing field is best_by (with indices: both).
                throw indices.isEmpty
                    ? BacktestError.invalidArgument(
                        "best_count needs best_by, a metric: one of \(SummaryMetric.allCases.map(\.rawValue).joined(separator: ", "))",
                        field: "get_variant_results.best_by")
                    : BacktestError.invalidArgument("set either indices or best_by with best_count, not both", field: "get_variant_results.best_count")
            }
            guard !indices.isEmpty else {
                throw BacktestError.invalidArgument("name the variants: indices, or best_by with best_count", field: "get_variant_results.indices")
            }
            return .variantResults(batchID: id, selection: .indices(indices))
        }
        guard indices.isEmpty else {
            throw BacktestError.invalidArgument("set either indices or best_by, not both", field: "get_variant_results.best_by")
        }
        guard let metric = SummaryMetric(name: bestBy) else {
            throw BacktestError.invalidArgument(
                "\(quotedInput(bestBy)) is not a metric; use one of: \(SummaryMetric.allCases.map(\.rawValue).joined(separator: ", "))",
                field: "get_variant_results.best_by")
        }
        guard m.best_count > 0 else {
            throw BacktestError.invalidArgument("best_count must be at least 1", field: "get_variant_results.best_count")
        }
        return .variantResults(batchID: id, selection: .best(metric, count: Int(m.best_count)))
    }

    static func variantResults(_ c: UnsafePointer<Backtest__V1__VariantResults>, path: String) throws -> CallResult {
        let m = c.pointee
        let results = try messages(m.results, m.n_results) { v, index in
            try ResultConversion.variantResult(v, path: join(path, "results[\(index)]"))
        }
        return .variantResults(batchID: string(m.batch_id), results: results)
    }
}

extension ScratchArena {
    func grid(_ g: Grid) -> UnsafeMutablePointer<Backtest__V1__Grid> {
        let m = message(PB.grid)
        m.pointee.base_strategy = strategy(g.base)
        m.pointee.n_axes = g.axes.count
        m.pointee.axes = messages(g.axes) { axis in
            let a = message(PB.gridAxis)
            a.pointee.path = cString(axis.path)
            a.pointee.n_values = axis.values.count
            a.pointee.values = strings(axis.values)
            a.pointee.range = cString(axis.range)
            a.pointee.zip_group = UInt32(clamping: axis.zipGroup)
            return a
        }
        return m
    }

    func variantResultsRequest(batchID: String, selection: VariantSelection) -> UnsafeMutablePointer<Backtest__V1__VariantResultsRequest> {
        let r = message(PB.variantResultsRequest)
        r.pointee.batch_id = cString(batchID)
        switch selection {
        case .indices(let indices):
            r.pointee.n_indices = indices.count
            r.pointee.indices = array(indices.map { UInt32(clamping: $0) })
        case .best(let metric, let count):
            r.pointee.best_by = cString(metric.rawValue)
            r.pointee.best_count = UInt32(clamping: count)
        }
        return r
    }

    func variantResults(batchID: String, results: [VariantResult]) -> UnsafeMutablePointer<Backtest__V1__VariantResults> {
        let r = message(PB.variantResults)
        r.pointee.batch_id = cString(batchID)
        r.pointee.n_results = results.count
        r.pointee.results = messages(results) { variantResult($0) }
        return r
    }
}
