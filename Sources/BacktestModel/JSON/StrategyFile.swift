import BacktestCore
import Foundation

extension Position {
    /// `value` as a count (`max_bars`, `stop_atr_period`): a whole number the wire's int32 holds;
    /// nil otherwise (2.5, 1e10, infinities).
    package static func wholeCount(_ value: Double) -> Int? {
        guard let whole = Int32(exactly: value) else { return nil }
        return Int(whole)
    }
}

extension Position: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: AnyKey.self)
        try container.rejectUnknownKeys(
            ["ticker", "weight", "entry", "exit", "direction", "sizing", "size", "stop_loss", "take_profit", "trailing_stop",
             "stop_atr_period", "max_bars"],
            in: "position")
        func number(_ key: String) throws -> Double? { try container.decodeIfPresent(Double.self, forKey: AnyKey(key)) }
        // Counts are read as numbers and checked here: Foundation's own Int decoding called 2.5
        // "not valid JSON" without naming the key and took 1e10, beyond the wire's int32.
        func integer(_ key: String) throws -> Int? {
            guard let value = try number(key) else { return nil }
            guard let whole = Position.wholeCount(value) else {
                throw DecodingError.dataCorruptedError(
                    forKey: AnyKey(key), in: container,
                    debugDescription: "\(key) must be a whole number up to \(Int32.max), got \(value)")
            }
            return whole
        }
        // The wire's 0 means "none" for these (proto3); in a file "none" is leaving the key out,
        // so an explicit 0 (or a negative) is an error naming the key, never a silent "none".
        func exitLevel(_ key: String) throws -> Double? {
            guard let value = try number(key) else { return nil }
            guard value > 0 else {
                throw DecodingError.dataCorruptedError(
                    forKey: AnyKey(key), in: container,
                    debugDescription: "\(key) must be a positive distance, got \(value) (leave the key out for none)")
            }
            return value
        }
        func count(_ key: String) throws -> Int? {
            guard let value = try integer(key) else { return nil }
            guard value >= 1 else {
                throw DecodingError.dataCorruptedError(
                    forKey: AnyKey(key), in: container, debugDescription: "\(key) must be at least 1, got \(value) (leave the key out for none)")
            }
            return value
        }
        self.init(
            ticker: try container.decode(String.self, forKey: AnyKey("ticker")).uppercased(),
            weight: try number("weight") ?? 1,
            entry: try container.decode(Condition.self, forKey: AnyKey("entry")),
            exit: try container.decodeIfPresent(Condition.self, forKey: AnyKey("exit")),
            direction: try container.decodeName(PositionDirection.self, forKey: "direction") ?? .default,
            sizing: try container.decodeName(SizingMode.self, forKey: "sizing") ?? .default,
            size: try number("size") ?? 0,
            exits: PriceExits(
                stopLoss: try exitLevel("stop_loss"), takeProfit: try exitLevel("take_profit"),
                trailingStop: try exitLevel("trailing_stop"), atrPeriod: try count("stop_atr_period"),
                maxBars: try count("max_bars")))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: AnyKey.self)
        try container.encode(ticker, forKey: AnyKey("ticker"))
        try container.encode(weight, forKey: AnyKey("weight"))
        try container.encode(entry, forKey: AnyKey("entry"))
        try container.encodeIfPresent(exit, forKey: AnyKey("exit"))
        // Issue 15's keys only when set, so a plain strategy's file is unchanged.
        if direction != .default { try container.encode(direction, forKey: AnyKey("direction")) }
        if sizing != .default { try container.encode(sizing, forKey: AnyKey("sizing")) }
        if sizing != .weight || size != 0 { try container.encode(size, forKey: AnyKey("size")) }
        try container.encodeIfPresent(exits.stopLoss, forKey: AnyKey("stop_loss"))
        try container.encodeIfPresent(exits.takeProfit, forKey: AnyKey("take_profit"))
        try container.encodeIfPresent(exits.trailingStop, forKey: AnyKey("trailing_stop"))
        try container.encodeIfPresent(exits.atrPeriod, forKey: AnyKey("stop_atr_period"))
        try container.encodeIfPresent(exits.maxBars, forKey: AnyKey("max_bars"))
    }
}

extension Strategy: Codable {
    /// The strategy keys of a strategy file (name, positions, fill, commission_bps, slippage_bps,
    /// rebalance, allow_leverage): the form of one variant in a batch file. Settings keys are
    /// rejected here; they belong to the batch.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: AnyKey.self)
        if let key = container.allKeys.first(where: { StrategyFile.settingsKeys.contains($0.stringValue) }) {
            throw DecodingError.dataCorruptedError(
                forKey: key, in: container,
                debugDescription: "'\(key.stringValue)' is a setting of the whole run, not of one strategy")
        }
        self = try StrategyFile(from: decoder).strategy
    }

    public func encode(to encoder: any Encoder) throws {
        try StrategyFile(strategy: self).encode(to: encoder)
    }
}

/// A strategy file for the CLI: a strategy and, optionally, settings, in one flat JSON object;
/// the case format of shared/reference/backtests.json is one:
///
///     {"name": "golden cross", "start": "2005-01-03", "end": "2019-12-31",
///      "initial_capital": 100000, "fill": "close", "commission_bps": 5, "slippage_bps": 2,
///      "rebalance": "none", "allow_leverage": false, "adjustment": "split", "benchmark": "SPY",
///      "positions": [{"ticker": "AAPL", "weight": 1.0,
///                     "entry": {"lhs": "sma:50", "op": ">", "rhs": "sma:200"}}]}
///
/// `id` is accepted as the name. Unknown keys are errors.
public struct StrategyFile: Sendable, Hashable, Codable {
    public var strategy: Strategy
    public var start: TradingDate?
    public var end: TradingDate?
    public var initialCapital: Double?
    public var adjustment: PriceAdjustment?
    public var benchmark: String?

    static let strategyKeys: Set<String> = ["name", "id", "positions", "fill", "commission_bps", "slippage_bps", "rebalance", "allow_leverage"]
    static let settingsKeys: Set<String> = ["start", "end", "initial_capital", "adjustment", "benchmark"]

    public init(
        strategy: Strategy, start: TradingDate? = nil, end: TradingDate? = nil, initialCapital: Double? = nil,
        adjustment: PriceAdjustment? = nil, benchmark: String? = nil
    ) {
        self.strategy = strategy
        self.start = start
        self.end = end
        self.initialCapital = initialCapital
        self.adjustment = adjustment
        self.benchmark = benchmark
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: AnyKey.self)
        try container.rejectUnknownKeys(Self.strategyKeys.union(Self.settingsKeys), in: "strategy file")
        func decode<T: Decodable>(_ key: String, _ type: T.Type) throws -> T? {
            try container.decodeIfPresent(T.self, forKey: AnyKey(key))
        }
        strategy = Strategy(
            name: try decode("name", String.self) ?? decode("id", String.self) ?? "",
            positions: try decode("positions", [Position].self) ?? [],
            fill: try container.decodeName(FillTiming.self, forKey: "fill") ?? .default,
            commissionBps: try decode("commission_bps", Double.self) ?? 0,
            slippageBps: try decode("slippage_bps", Double.self) ?? 0,
            rebalance: try container.decodeName(Rebalance.self, forKey: "rebalance") ?? .none,
            allowLeverage: try decode("allow_leverage", Bool.self) ?? false)
        start = try decode("start", TradingDate.self)
        end = try decode("end", TradingDate.self)
        initialCapital = try decode("initial_capital", Double.self)
        adjustment = try container.decodeName(PriceAdjustment.self, forKey: "adjustment")
        benchmark = try decode("benchmark", String.self)?.uppercased()
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: AnyKey.self)
        try container.encode(strategy.name, forKey: AnyKey("name"))
        try container.encode(strategy.positions, forKey: AnyKey("positions"))
        try container.encode(strategy.fill.rawValue, forKey: AnyKey("fill"))
        try container.encode(strategy.commissionBps, forKey: AnyKey("commission_bps"))
        try container.encode(strategy.slippageBps, forKey: AnyKey("slippage_bps"))
        try container.encode(strategy.rebalance.rawValue, forKey: AnyKey("rebalance"))
        try container.encode(strategy.allowLeverage, forKey: AnyKey("allow_leverage"))
        try container.encodeIfPresent(start, forKey: AnyKey("start"))
        try container.encodeIfPresent(end, forKey: AnyKey("end"))
        try container.encodeIfPresent(initialCapital, forKey: AnyKey("initial_capital"))
        try container.encodeIfPresent(adjustment?.rawValue, forKey: AnyKey("adjustment"))
        try container.encodeIfPresent(benchmark, forKey: AnyKey("benchmark"))
    }

    /// Decodes a file; errors are INVALID_ARGUMENT with the JSON path of the fault as `field`
    /// ("positions[0].entry.op") and a message saying what was wrong there. A key written twice in
    /// one object is an error too (field: its path, "positions[0].weight"), where JSON decoders
    /// would silently keep one of the values.
    public static func decode(_ data: Data) throws(BacktestError) -> StrategyFile {
        try JSONDuplicateKeys.reject(in: data, document: "the strategy file")
        do {
            return try JSONDecoder().decode(StrategyFile.self, from: data)
        } catch let error as DecodingError {
            if case .dataCorrupted(let context) = error, context.codingPath.isEmpty,
               let syntax = syntaxError(in: data, expected: "a strategy file is a JSON object") {
                throw .invalidArgument(syntax)
            }
            throw describe(error)
        } catch {
            throw .invalidArgument("strategy file: \(error)")
        }
    }

    /// Where `data` stops being JSON, in words ("not valid JSON: invalid value at line 2, column
    /// 19"; for an empty file "the file is empty: " and `expected`); nil when it is JSON.
    /// Foundation's decoder says only "The given data was not valid JSON." (a tester's empty and
    /// binary files); its serializer gives the byte offset.
    static func syntaxError(in data: Data, expected: String) -> String? {
        if data.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            return "the file is empty: \(expected)"
        }
        do {
            _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
            return nil
        } catch {
            let description = ((error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String) ?? ""
            if description.contains("end of file") { return "not valid JSON: the file ends inside a value" }
            guard let range = description.range(of: "around character "),
                  let offset = Int(description[range.upperBound...].prefix { $0.isNumber }), offset <= data.count else {
                return "not valid JSON"
            }
            let before = data.prefix(offset)
            let line = before.reduce(1) { $0 + ($1 == 0x0A ? 1 : 0) }
            let column = offset - (before.lastIndex(of: 0x0A).map { $0 - data.startIndex + 1 } ?? 0) + 1
            return "not valid JSON: invalid value at line \(line), column \(column) (byte \(offset))"
        }
    }

    /// Settings from the file, with `defaults` for what it leaves out.
    public func settings(defaults: BacktestSettings) -> BacktestSettings {
        BacktestSettings(
            start: start ?? defaults.start, end: end ?? defaults.end,
            initialCapital: initialCapital ?? defaults.initialCapital,
            adjustment: adjustment ?? defaults.adjustment, benchmark: benchmark ?? defaults.benchmark)
    }

    static func describe(_ error: DecodingError) -> BacktestError {
        func path(_ codingPath: [any CodingKey]) -> String {
            var text = ""
            for key in codingPath {
                if let index = key.intValue { text += "[\(index)]" } else { text += (text.isEmpty ? "" : ".") + key.stringValue }
            }
            return text
        }
        switch error {
        case .keyNotFound(let key, let context):
            let field = path(context.codingPath + [key])
            return .invalidArgument("missing required key '\(key.stringValue)'", field: field)
        case .typeMismatch(let type, let context):
            return .invalidArgument("expected \(jsonName(type))\(foundKind(context.debugDescription))", field: path(context.codingPath))
        case .valueNotFound(let type, let context):
            return .invalidArgument("expected \(jsonName(type)), found null", field: path(context.codingPath))
        case .dataCorrupted(let context):
            let underlying = context.underlyingError.map { " (\($0))" } ?? ""
            return .invalidArgument(context.debugDescription + underlying, field: path(context.codingPath))
        @unknown default:
            return .invalidArgument("strategy file: \(error)")
        }
    }

    /// ", found a number" from Foundation's "Expected to decode String but found number instead.";
    /// another decoder's own text as ": text".
    private static func foundKind(_ description: String) -> String {
        guard description.hasPrefix("Expected to decode ") else { return description.isEmpty ? "" : ": " + description }
        guard let found = description.range(of: " but found "), let end = description.range(of: " instead", range: found.upperBound..<description.endIndex) else {
            return ""
        }
        switch description[found.upperBound..<end.lowerBound] {
        case "number": return ", found a number"
        case "string": return ", found a string"
        case "bool": return ", found true or false"
        case "a dictionary", "dictionary": return ", found an object"
        case "an array", "array": return ", found an array"
        case let other: return ", found \(other)"
        }
    }

    private static func jsonName(_ type: Any.Type) -> String {
        switch type {
        case is Double.Type, is Int.Type: "a number"
        case is String.Type: "a string"
        case is Bool.Type: "true or false"
        default:
            "\(type)".hasPrefix("Dictionary") ? "an object" : "\(type)".hasPrefix("Array") ? "an array" : "\(type)"
        }
    }
}
