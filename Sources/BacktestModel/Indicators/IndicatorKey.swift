import BacktestCore

extension IndicatorSpec {
    /// The canonical key, as in the reference files: "sma:50", "macd:12,26,9:signal",
    /// "bbands:20,2:upper", "obv". Parameters print without a trailing ".0"; the output is printed
    /// only for indicators with several outputs. Meaningful on a normalized spec (see
    /// `IndicatorCatalog.normalize`); `IndicatorKey` always holds one.
    public var canonicalKey: String {
        var key = type
        if !params.isEmpty { key += ":" + params.map(IndicatorCatalog.format).joined(separator: ",") }
        if let definition = IndicatorCatalog.definition(type), definition.outputs.count > 1, !output.isEmpty {
            key += ":" + output
        }
        return key
    }

    /// Parses "type[:p1,p2,...][:output]" ("sma:50", "macd:12,26,9:signal", "rsi", "obv") and
    /// normalizes it. Errors name `field` (evaluated only for an error).
    public init(parsing text: String, field: @autoclosure () -> String = "indicator") throws(BacktestError) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map {
            $0.trimmingCharacters(in: " ")
        }
        guard let type = parts.first, !type.isEmpty, parts.count <= 3 else {
            throw .invalidArgument("\(quotedInput(text, limit: 40)) is not an indicator key of the form type:params[:output]", field: field())
        }
        var params: [Double] = []
        var output = ""
        if parts.count >= 2 {
            let second = parts[1]
            let looksNumeric = second.first.map { $0.isNumber || $0 == "-" || $0 == "." } ?? true
            if looksNumeric {
                for item in second.split(separator: ",", omittingEmptySubsequences: false) {
                    guard let value = Double(item.trimmingCharacters(in: " ")) else {
                        throw .invalidArgument("\(quotedInput(text, limit: 40)): parameter \(quotedInput(item, limit: 40)) is not a number", field: field())
                    }
                    params.append(value)
                }
                if parts.count == 3 { output = parts[2] }
            } else if parts.count == 2 {
                output = second
            } else {
                throw .invalidArgument("\(quotedInput(text, limit: 40)): parameters must be numbers", field: field())
            }
        }
        self = try IndicatorCatalog.normalize(IndicatorSpec(type: type, params: params, output: output), field: field())
    }
}

extension String {
    fileprivate func trimmingCharacters(in character: Character) -> String {
        var slice = Substring(self)
        while slice.first == character { slice.removeFirst() }
        while slice.last == character { slice.removeLast() }
        return String(slice)
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in character: Character) -> String {
        String(self).trimmingCharacters(in: character)
    }
}

/// One indicator series of one ticker: the unit of computation, sharing and caching.
public struct IndicatorKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let ticker: String
    /// Normalized (see `IndicatorCatalog.normalize`).
    public let spec: IndicatorSpec

    /// Normalizes `spec`; throws INVALID_ARGUMENT for an unknown indicator or bad parameters,
    /// naming `field` (evaluated only for an error).
    public init(ticker: String, spec: IndicatorSpec, field: @autoclosure () -> String = "indicator") throws(BacktestError) {
        self.ticker = ticker
        self.spec = try IndicatorCatalog.normalize(spec, field: field())
    }

    /// From a canonical (or any parseable) key string: `IndicatorKey(ticker: "AAPL", key: "sma:50")`.
    public init(ticker: String, key: String, field: @autoclosure () -> String = "indicator") throws(BacktestError) {
        self.ticker = ticker
        self.spec = try IndicatorSpec(parsing: key, field: field())
    }

    /// "AAPL|sma:50": stable across processes, usable as (part of) a cache key.
    public var description: String { "\(ticker)|\(spec.canonicalKey)" }

    public static func < (lhs: IndicatorKey, rhs: IndicatorKey) -> Bool {
        (lhs.ticker, lhs.spec.canonicalKey) < (rhs.ticker, rhs.spec.canonicalKey)
    }
}
