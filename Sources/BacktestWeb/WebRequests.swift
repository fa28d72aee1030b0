import BacktestCore
import BacktestModel
import Foundation

/// The bodies the web API accepts, decoded into the service's requests. A body that is not what
/// is documented is INVALID_ARGUMENT naming the JSON path of the fault in the body (`field`), as
/// `StrategyFile.decode` does for a strategy file; what the service finds wrong afterwards keeps
/// the service's own path ("strategy.positions[0].weight", "variants[3]...", "run_batch.grid").
enum WebRequests {
    /// `POST /api/backtest`: a strategy file, the same JSON `backtest run FILE` reads, with
    /// `start` and `end` required.
    static func backtest(_ body: Data) throws(BacktestError) -> BacktestRequest {
        let file = try StrategyFile.decode(body)
        return BacktestRequest(strategy: file.strategy, settings: try settings(of: file, prefix: ""))
    }

    /// `POST /api/batches`:
    ///
    ///     {"strategy": {a strategy file, with start and end},
    ///      "grid": ["positions[0].entry.lhs=sma:5..20/5", "positions[0].entry.rhs=sma:100,sma:200"],
    ///      "detail": "default" | "summary" | "full", "max_parallel": 0}
    ///
    /// or `"variants": [strategy, ...]` (strategy keys only) instead of `"grid"`; the settings
    /// are the `strategy` file's. Grid axes use the CLI's `--grid PATH=VALUES` syntax.
    static func batch(_ body: Data) throws(BacktestError) -> BatchRequest {
        let object: [String: Any]
        do {
            guard let parsed = try JSONSerialization.jsonObject(with: body) as? [String: Any] else {
                throw BacktestError.invalidArgument("the body must be a JSON object", field: "")
            }
            object = parsed
        } catch let error as BacktestError {
            throw error
        } catch {
            throw .invalidArgument("the body is not valid JSON", field: "")
        }
        let known: Set<String> = ["strategy", "grid", "variants", "detail", "max_parallel"]
        if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
            throw .invalidArgument("unknown key (allowed: \(known.sorted().joined(separator: ", ")))", field: ErrorDocument.bounded(unknown, 64))
        }
        guard let strategyObject = object["strategy"] else {
            throw .invalidArgument("missing required key 'strategy' (a strategy file with start and end)", field: "strategy")
        }
        let file: StrategyFile
        do {
            file = try StrategyFile.decode(try JSONSerialization.data(withJSONObject: strategyObject))
        } catch let error as BacktestError {
            throw prefixed(error, "strategy")
        } catch {
            throw .invalidArgument("expected a JSON object", field: "strategy")
        }
        let settings = try settings(of: file, prefix: "strategy.")

        var detail = ResultDetail.default
        if let value = object["detail"] {
            guard let text = value as? String, let parsed = ResultDetail(rawValue: text.lowercased()) else {
                throw .invalidArgument("expected one of: default, summary, full", field: "detail")
            }
            detail = parsed
        }
        var maxParallel = 0
        if let value = object["max_parallel"] {
            guard let number = value as? NSNumber, let integer = Int(exactly: number.doubleValue), integer >= 0, integer <= 4096 else {
                throw .invalidArgument("expected an integer in 0...4096", field: "max_parallel")
            }
            maxParallel = integer
        }
        switch (object["grid"], object["variants"]) {
        case (.some, .some):
            throw .invalidArgument("set either variants or grid, not both", field: "grid")
        case (let grid?, nil):
            guard let lines = grid as? [Any], !lines.isEmpty else {
                throw .invalidArgument("expected a non-empty array of \"PATH=VALUES\" strings", field: "grid")
            }
            var axes: [GridAxis] = []
            for (i, line) in lines.enumerated() {
                guard let text = line as? String else {
                    throw .invalidArgument("expected a string \"PATH=VALUES\"", field: "grid[\(i)]")
                }
                do {
                    axes.append(try GridAxis(parsing: text))
                } catch {
                    var named = error
                    named.field = "grid[\(i)]" + (error.field.isEmpty ? "" : " (\(ErrorDocument.bounded(error.field, 80)))")
                    throw named
                }
            }
            return BatchRequest(grid: Grid(base: file.strategy, axes: axes), settings: settings, maxParallel: maxParallel, detail: detail)
        case (nil, let variants?):
            guard let list = variants as? [Any], !list.isEmpty else {
                throw .invalidArgument("expected a non-empty array of strategies", field: "variants")
            }
            var strategies: [Strategy] = []
            for (i, item) in list.enumerated() {
                let variant: StrategyFile
                do {
                    variant = try StrategyFile.decode(try JSONSerialization.data(withJSONObject: item))
                } catch let error as BacktestError {
                    throw prefixed(error, "variants[\(i)]")
                } catch {
                    throw .invalidArgument("expected a JSON object", field: "variants[\(i)]")
                }
                // Settings belong to the batch (the "strategy" file), not to one variant.
                if variant.start != nil || variant.end != nil || variant.initialCapital != nil || variant.adjustment != nil || variant.benchmark != nil {
                    throw .invalidArgument("start, end, initial_capital, adjustment and benchmark are settings of the whole batch; set them in \"strategy\"", field: "variants[\(i)]")
                }
                strategies.append(variant.strategy)
            }
            return BatchRequest(variants: strategies, settings: settings, maxParallel: maxParallel, detail: detail)
        case (nil, nil):
            throw .invalidArgument("a batch needs \"grid\" (axes) or \"variants\"", field: "grid")
        }
    }

    /// The file's settings; `start` and `end` are required (a web request has no --start flag).
    private static func settings(of file: StrategyFile, prefix: String) throws(BacktestError) -> BacktestSettings {
        guard let start = file.start else { throw .invalidArgument("missing required key 'start' (YYYY-MM-DD)", field: prefix + "start") }
        guard let end = file.end else { throw .invalidArgument("missing required key 'end' (YYYY-MM-DD)", field: prefix + "end") }
        return file.settings(defaults: BacktestSettings(start: start, end: end))
    }

    private static func prefixed(_ error: BacktestError, _ prefix: String) -> BacktestError {
        var named = error
        named.field = error.field.isEmpty ? prefix : (error.field.hasPrefix("[") ? prefix + error.field : prefix + "." + error.field)
        return named
    }

    /// `known=0-7,9,12-15`: the indices a status poll already has, as ranges.
    static func indices(_ text: Substring, limit: Int) throws(BacktestError) -> Set<Int> {
        var known = Set<Int>()
        guard !text.isEmpty else { return known }
        for part in text.split(separator: ",") {
            let bounds = part.split(separator: "-", maxSplits: 1)
            guard let low = Int(bounds[0]), low >= 0,
                  let high = bounds.count == 2 ? Int(bounds[1]) : low, high >= low, high < limit
            else {
                throw .invalidArgument("expected comma-separated indices or ranges (0-7,9) below \(limit)", field: "known")
            }
            known.formUnion(low...high)
        }
        return known
    }
}
