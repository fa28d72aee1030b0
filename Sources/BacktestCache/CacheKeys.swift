import BacktestCore

/// The cache's key layout. Everything lives under one prefix and schema version, and every data
/// key carries the generation it was written in:
///
///     {prefix}:v{schema}:generation                                       counter (INCR on purge)
///     {prefix}:v{schema}:g{gen}:bars:{source}:{adj}:{TICKER}:{yyyymm}      one month of bars
///     {prefix}:v{schema}:g{gen}:ind:{source}:{adj}:{TICKER}:{indicator}:{from}:{through}
///
/// A purge bumps the generation, so new requests read an empty keyspace at once, while requests
/// that started before keep reading theirs; the old generation's keys are then swept with
/// SCAN MATCH `{prefix}:v{schema}:g*` + UNLINK. Keys of other prefixes are never touched.
struct CacheKeys: Sendable {
    let prefix: String
    /// "{prefix}:v{schema}"
    let base: String

    init(prefix: String) {
        self.prefix = prefix
        self.base = "\(prefix):v\(CacheSchema.version)"
    }

    var generation: String { "\(base):generation" }

    func bars(generation: Int64, source: String, adjustment: PriceAdjustment, symbol: String, month: CacheMonth) -> String {
        barsPrefix(generation: generation, source: source, adjustment: adjustment, symbol: symbol) + String(month.number)
    }

    /// Everything of a bars key but the month, so a query builds it once per symbol. `symbol` is
    /// a checked `Ticker`'s symbol, followed by "@" and its data's fingerprint where the source
    /// has one (`CacheSession.keyParts`).
    func barsPrefix(generation: Int64, source: String, adjustment: PriceAdjustment, symbol: String) -> String {
        "\(base):g\(generation):bars:\(source):\(adjustment.rawValue):\(symbol):"
    }

    func indicator(generation: Int64, key: IndicatorCacheKey) -> String {
        "\(base):g\(generation):ind:\(key.source):\(key.adjustment.rawValue):\(key.keySymbol ?? key.ticker.symbol):\(key.indicator):"
            + "\(key.from.iso):\(key.through.iso)"
    }

    /// SCAN MATCH pattern for every generation's data keys (glob characters of the prefix escaped).
    var dataKeyPattern: String {
        var escaped = ""
        for character in base {
            if "*?[]\\".contains(character) { escaped.append("\\") }
            escaped.append(character)
        }
        return escaped + ":g*"
    }

    /// The generation a data key was written in; nil for keys that are not ours.
    func generation(ofKey key: [UInt8]) -> Int64? {
        let head = Array("\(base):g".utf8)
        guard key.count > head.count, key.starts(with: head) else { return nil }
        var value: Int64 = 0
        var index = head.count
        var digits = 0
        while index < key.count, key[index] >= UInt8(ascii: "0"), key[index] <= UInt8(ascii: "9"), digits < 18 {
            value = value * 10 + Int64(key[index] - UInt8(ascii: "0"))
            index += 1
            digits += 1
        }
        guard digits > 0, index < key.count, key[index] == UInt8(ascii: ":") else { return nil }
        return value
    }
}
