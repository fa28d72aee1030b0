import BacktestCore

// JSON for conditions, in the format of shared/reference/backtests.json and its extensions:
//
//   {"lhs": "sma:50", "op": ">", "rhs": "sma:200"}            indicator keys, on the position's ticker
//   {"lhs": "close", "op": "crosses_above", "rhs": "ema:20"}   price fields: open high low close volume
//   {"lhs": "rsi:14", "op": "<", "rhs": 30}                   numbers
//   {"lhs": "close", "op": ">", "rhs": "sma:200", "ticker": "SPY"}        both sides on SPY
//   {"lhs": {"series": "close", "ticker": "SPY"}, "op": ">", "rhs": 400}  one side on SPY
//   {"all": [...]}, {"any": [...]}, {"not": {...}}
//
// Ops: > >= < <= crosses_above crosses_below.

struct AnyKey: CodingKey, Hashable {
    var stringValue: String
    var intValue: Int?
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { stringValue = String(intValue); self.intValue = intValue }
}

extension KeyedDecodingContainer where Key == AnyKey {
    /// Rejects keys outside `allowed`, so a typo ("comission_bps") is an error, not a silent default.
    func rejectUnknownKeys(_ allowed: Set<String>, in what: String) throws {
        for key in allKeys where !allowed.contains(key.stringValue) {
            throw DecodingError.dataCorruptedError(
                forKey: key, in: self,
                debugDescription: "unknown key \(quotedInput(key.stringValue, limit: 40)) in \(what) (expected one of: \(allowed.sorted().joined(separator: ", ")))")
        }
    }

    /// The value of an enum written as its raw name under `key` (any case), nil when absent; an
    /// unknown name is an error naming the allowed ones (Foundation's own "Cannot initialize
    /// PositionDirection from invalid String value" did not).
    func decodeName<T: RawRepresentable<String> & CaseIterable>(_ type: T.Type, forKey key: String) throws -> T? {
        guard let text = try decodeIfPresent(String.self, forKey: AnyKey(key)) else { return nil }
        guard let value = T(rawValue: text.lowercased()) else {
            throw DecodingError.dataCorruptedError(
                forKey: AnyKey(key), in: self,
                debugDescription: "\(quotedInput(text, limit: 40)) is not a valid \(key) (expected one of: \(T.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return value
    }
}

extension Comparison {
    /// Also accepts "crosses above" and "crossesAbove".
    init?(json text: String) {
        let normalized = text.lowercased().replacingOccurrences(" ", with: "_")
        switch normalized {
        case "crossesabove": self = .crossesAbove
        case "crossesbelow": self = .crossesBelow
        default: self.init(rawValue: normalized)
        }
    }
}

extension String {
    fileprivate func replacingOccurrences(_ target: Character, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}

extension Condition: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: AnyKey.self)
        if container.contains(AnyKey("all")) || container.contains(AnyKey("any")) {
            let kind = container.contains(AnyKey("all")) ? "all" : "any"
            try container.rejectUnknownKeys([kind], in: "'\(kind)' condition")
            let members = try container.decode([Condition].self, forKey: AnyKey(kind))
            self = kind == "all" ? .all(members) : .any(members)
        } else if container.contains(AnyKey("not")) {
            try container.rejectUnknownKeys(["not"], in: "'not' condition")
            self = .not(try container.decode(Condition.self, forKey: AnyKey("not")))
        } else if container.contains(AnyKey("op")) {
            try container.rejectUnknownKeys(["lhs", "op", "rhs", "ticker"], in: "comparison")
            let opText = try container.decode(String.self, forKey: AnyKey("op"))
            guard let op = Comparison(json: opText) else {
                throw DecodingError.dataCorruptedError(
                    forKey: AnyKey("op"), in: container,
                    debugDescription: "unknown operator \(quotedInput(opText, limit: 40)) (expected >, >=, <, <=, crosses_above, crosses_below)")
            }
            let ticker = try container.decodeIfPresent(String.self, forKey: AnyKey("ticker"))?.uppercased()
            var lhs = try container.decode(Operand.self, forKey: AnyKey("lhs"))
            var rhs = try container.decode(Operand.self, forKey: AnyKey("rhs"))
            if let ticker {
                lhs = lhs.onTicker(ticker)
                rhs = rhs.onTicker(ticker)
            }
            self = .compare(lhs: lhs, op: op, rhs: rhs)
        } else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath,
                      debugDescription: "a condition needs 'op' with 'lhs' and 'rhs', or one of 'all', 'any', 'not'"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: AnyKey.self)
        switch self {
        case .compare(let lhs, let op, let rhs):
            try container.encode(lhs, forKey: AnyKey("lhs"))
            try container.encode(op.rawValue, forKey: AnyKey("op"))
            try container.encode(rhs, forKey: AnyKey("rhs"))
        case .all(let members): try container.encode(members, forKey: AnyKey("all"))
        case .any(let members): try container.encode(members, forKey: AnyKey("any"))
        case .not(let inner): try container.encode(inner, forKey: AnyKey("not"))
        }
    }
}

extension Operand: Codable {
    /// A number; a string naming a price field or an indicator key; or an object
    /// {"series": "sma:200", "ticker": "SPY"} ("field" and "indicator" are accepted for "series").
    public init(from decoder: any Decoder) throws {
        if let container = try? decoder.singleValueContainer(), !container.decodeNil() {
            if let number = try? container.decode(Double.self) {
                self = .number(number)
                return
            }
            if let text = try? container.decode(String.self) {
                self = .series(SeriesRef(source: try SeriesSource(json: text, codingPath: decoder.codingPath)))
                return
            }
        }
        let container = try decoder.container(keyedBy: AnyKey.self)
        try container.rejectUnknownKeys(["series", "field", "indicator", "ticker"], in: "operand")
        let ticker = try container.decodeIfPresent(String.self, forKey: AnyKey("ticker"))?.uppercased()
        let key = ["series", "field", "indicator"].map(AnyKey.init).first { container.contains($0) }
        guard let key else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "an operand object needs 'series' (a price field or indicator key)"))
        }
        let source: SeriesSource
        if let text = try? container.decode(String.self, forKey: key) {
            source = try SeriesSource(json: text, codingPath: decoder.codingPath + [key])
        } else {
            source = .indicator(try container.decode(IndicatorSpec.self, forKey: key))
        }
        self = .series(SeriesRef(ticker: ticker, source: source))
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .number(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .series(let series):
            if let ticker = series.ticker {
                var container = encoder.container(keyedBy: AnyKey.self)
                try container.encode(series.source.jsonText, forKey: AnyKey("series"))
                try container.encode(ticker, forKey: AnyKey("ticker"))
            } else {
                var container = encoder.singleValueContainer()
                try container.encode(series.source.jsonText)
            }
        }
    }

    /// The operand with `ticker` where it names none.
    func onTicker(_ ticker: String) -> Operand {
        guard case .series(var series) = self, series.ticker == nil else { return self }
        series.ticker = ticker
        return .series(series)
    }
}

extension SeriesSource {
    init(json text: String, codingPath: [any CodingKey]) throws {
        if let field = PriceField(rawValue: text.lowercased()) {
            self = .field(field)
            return
        }
        do {
            self = .indicator(try IndicatorSpec(parsing: text))
        } catch {
            throw DecodingError.dataCorrupted(
                .init(codingPath: codingPath,
                      debugDescription: "\(quotedInput(text, limit: 40)) is neither a price field (open, high, low, close, volume) nor a valid indicator key: \(error.message)"))
        }
    }

    var jsonText: String {
        switch self {
        case .field(let field): field.rawValue
        case .indicator(let spec): spec.canonicalKey
        }
    }
}

extension IndicatorSpec: Codable {
    /// {"type": "macd", "params": [12, 26, 9], "output": "signal"}, or a key string "macd:12,26,9:signal".
    public init(from decoder: any Decoder) throws {
        if let container = try? decoder.singleValueContainer(), let text = try? container.decode(String.self) {
            do { self = try IndicatorSpec(parsing: text) } catch {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.message))
            }
            return
        }
        let container = try decoder.container(keyedBy: AnyKey.self)
        try container.rejectUnknownKeys(["type", "params", "output"], in: "indicator")
        self.init(
            type: try container.decode(String.self, forKey: AnyKey("type")),
            params: try container.decodeIfPresent([Double].self, forKey: AnyKey("params")) ?? [],
            output: try container.decodeIfPresent(String.self, forKey: AnyKey("output")) ?? "")
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(canonicalKey)
    }
}
