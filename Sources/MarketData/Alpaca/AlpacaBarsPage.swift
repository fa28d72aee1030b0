import BacktestCore
import Foundation

/// One page of Alpaca's bars response:
///
///     {"bars": {"AAPL": [{"t": "2022-03-09T05:00:00Z", "o": …, "h": …, "l": …, "c": …,
///                         "v": …, "n": …, "vw": …}, …], …},
///      "next_page_token": "…" | null}
///
/// Parsed defensively: `bars` may be `{}`, `null` or absent, a symbol's list may be `null`, the
/// token may be absent. `n` and `vw` are not needed and not required.
struct AlpacaBarsPage: Sendable {
    struct Bar: Sendable {
        var date: TradingDate
        var open, high, low, close, volume: Double
    }

    var bars: [String: [Bar]]
    var nextPageToken: String?

    /// Parses a page body. The scan is our own (`BarsPageScanner`) rather than `JSONDecoder`: a
    /// page of 10,000 bars is 2 MB of JSON, which Foundation's decoder took 60-120 ms to read on
    /// the bench machine, most of a cold backtest's time beside the vendor's latency; the scanner
    /// reads it in a few. It accepts any JSON (whitespace, key order, escapes, unknown keys of
    /// any type) and requires `t`, `o`, `h`, `l`, `c`, `v` in every bar.
    static func parse(_ body: [UInt8]) throws(BacktestError) -> AlpacaBarsPage {
        let scanned: (bars: [String: [(t: String, o: Double, h: Double, l: Double, c: Double, v: Double)]], token: String?)
        do {
            scanned = try body.withUnsafeBufferPointer { buffer throws(BarsPageScanner.Failure) in
                var scanner = BarsPageScanner(buffer)
                return try scanner.page()
            }
        } catch {
            let excerpt = String(decoding: body.prefix(120), as: UTF8.self)
            throw BacktestError(.unavailable, "Alpaca sent an unreadable bars response (\(error.reason)): \(excerpt)", cause: error)
        }
        var bars: [String: [Bar]] = [:]
        for (symbol, list) in scanned.bars {
            var converted: [Bar] = []
            converted.reserveCapacity(list.count)
            for bar in list {
                // Daily bars start at midnight New York time, written in UTC (04:00Z in EDT,
                // 05:00Z in EST): the trading date is the New York date of `t`.
                guard let instant = RFC3339.parse(bar.t) else {
                    throw BacktestError(.unavailable, "Alpaca sent a bar of \(symbol) with timestamp '\(bar.t)', not RFC 3339")
                }
                converted.append(Bar(
                    date: NewYorkTime.date(unixSeconds: instant),
                    open: bar.o, high: bar.h, low: bar.l, close: bar.c, volume: bar.v))
            }
            bars[symbol.uppercased(), default: []].append(contentsOf: converted)
        }
        let token = scanned.token.flatMap { $0.isEmpty ? nil : $0 }
        return AlpacaBarsPage(bars: bars, nextPageToken: token)
    }
}

/// A JSON scanner for exactly the shape of a bars page (RFC 8259 syntax; unknown members skipped).
struct BarsPageScanner {
    struct Failure: Error {
        var reason: String
    }

    typealias WireBar = (t: String, o: Double, h: Double, l: Double, c: Double, v: Double)

    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    /// The whole body: `{"bars": {...} | null, "next_page_token": "..." | null, ...}`.
    mutating func page() throws(Failure) -> (bars: [String: [WireBar]], token: String?) {
        var bars: [String: [WireBar]] = [:]
        var token: String?
        try expect(UInt8(ascii: "{"))
        var first = true
        while let key = try nextKey(first: &first) {
            switch key {
            case "bars" where try !null():
                try expect(UInt8(ascii: "{"))
                var firstSymbol = true
                while let symbol = try nextKey(first: &firstSymbol) {
                    if try null() { continue }
                    try expect(UInt8(ascii: "["))
                    var list: [WireBar] = []
                    var firstBar = true
                    while try nextElement(first: &firstBar, closing: UInt8(ascii: "]")) { list.append(try bar()) }
                    bars[symbol, default: []].append(contentsOf: list)
                }
            case "bars":
                break  // null
            case "next_page_token":
                token = try null() ? nil : string()
            default:
                try skipValue()
            }
        }
        skipWhitespace()
        guard index == bytes.count else { throw fail("text after the JSON value") }
        return (bars, token)
    }

    private mutating func bar() throws(Failure) -> WireBar {
        var t: String?
        var o, h, l, c, v: Double?
        try expect(UInt8(ascii: "{"))
        var first = true
        while let key = try nextKey(first: &first) {
            switch key {
            case "t": t = try string()
            case "o": o = try number()
            case "h": h = try number()
            case "l": l = try number()
            case "c": c = try number()
            case "v": v = try number()
            default: try skipValue()
            }
        }
        guard let t, let o, let h, let l, let c, let v else {
            throw fail("a bar without all of t, o, h, l, c, v")
        }
        return (t, o, h, l, c, v)
    }

    // MARK: JSON

    /// Inside an object whose `{` was read: the next member's key (its `:` read too), or nil
    /// once the object's `}` was read.
    private mutating func nextKey(first: inout Bool) throws(Failure) -> String? {
        guard try nextElement(first: &first, closing: UInt8(ascii: "}")) else { return nil }
        let key = try string()
        try expect(UInt8(ascii: ":"))
        return key
    }

    /// Inside an array or object whose opening bracket was read: true when another element
    /// follows (its separating `,` read), false once `closing` was read.
    private mutating func nextElement(first: inout Bool, closing: UInt8) throws(Failure) -> Bool {
        skipWhitespace()
        if first {
            first = false
            if peek() == closing {
                index += 1
                return false
            }
            return true
        }
        switch next() {
        case UInt8(ascii: ","): return true
        case closing: return false
        default: throw fail("expected ',' or '\(Character(Unicode.Scalar(closing)))'")
        }
    }

    /// Consumes `null` if it comes next.
    private mutating func null() throws(Failure) -> Bool {
        skipWhitespace()
        guard peek() == UInt8(ascii: "n") else { return false }
        try literal("null")
        return true
    }

    private mutating func string() throws(Failure) -> String {
        try expect(UInt8(ascii: "\""))
        let start = index
        while index < bytes.count, bytes[index] != UInt8(ascii: "\""), bytes[index] != UInt8(ascii: "\\") {
            guard bytes[index] >= 0x20 else { throw fail("a control character in a string") }
            index += 1
        }
        guard index < bytes.count else { throw fail("an unterminated string") }
        if bytes[index] == UInt8(ascii: "\"") {
            index += 1
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index - 1]), as: UTF8.self)
        }
        var utf8 = Array(bytes[start..<index])
        while true {
            guard index < bytes.count else { throw fail("an unterminated string") }
            let byte = bytes[index]
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                return String(decoding: utf8, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard index < bytes.count else { throw fail("an unterminated string") }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "n"): utf8.append(0x0A)
                case UInt8(ascii: "r"): utf8.append(0x0D)
                case UInt8(ascii: "t"): utf8.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar), bytes[index...].starts(with: [UInt8(ascii: "\\"), UInt8(ascii: "u")]) {
                        index += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw fail("an invalid surrogate pair") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    utf8.append(contentsOf: String(Unicode.Scalar(scalar) ?? "\u{FFFD}").utf8)
                default:
                    throw fail("an invalid escape")
                }
            default:
                guard byte >= 0x20 else { throw fail("a control character in a string") }
                utf8.append(byte)
            }
        }
    }

    private mutating func hex4() throws(Failure) -> UInt32 {
        guard index + 4 <= bytes.count else { throw fail("a short \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            index += 1
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw fail("a bad \\u escape")
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    /// A JSON number (`-?int frac? exp?`), read by Swift's correctly rounded `Double(_:)`.
    private mutating func number() throws(Failure) -> Double {
        skipWhitespace()
        let start = index
        if peek() == UInt8(ascii: "-") { index += 1 }
        func digits(_ scanner: inout BarsPageScanner) -> Int {
            let from = scanner.index
            while scanner.index < scanner.bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(scanner.bytes[scanner.index]) {
                scanner.index += 1
            }
            return scanner.index - from
        }
        guard digits(&self) > 0 else { throw fail("expected a number") }
        if peek() == UInt8(ascii: ".") {
            index += 1
            guard digits(&self) > 0 else { throw fail("a number without fraction digits") }
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            index += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { index += 1 }
            guard digits(&self) > 0 else { throw fail("a number without exponent digits") }
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        guard let value = Double(text) else { throw fail("a number out of range") }
        return value
    }

    private mutating func skipValue() throws(Failure) {
        skipWhitespace()
        switch peek() {
        case UInt8(ascii: "{"):
            index += 1
            var first = true
            while try nextKey(first: &first) != nil { try skipValue() }
        case UInt8(ascii: "["):
            index += 1
            var first = true
            while try nextElement(first: &first, closing: UInt8(ascii: "]")) { try skipValue() }
        case UInt8(ascii: "\""): _ = try string()
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        default: _ = try number()
        }
    }

    private mutating func literal(_ word: StaticString) throws(Failure) {
        let text = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard bytes[index...].starts(with: text) else { throw fail("expected \(word)") }
        index += text.count
    }

    private mutating func expect(_ byte: UInt8) throws(Failure) {
        skipWhitespace()
        guard next() == byte else { throw fail("expected '\(Character(Unicode.Scalar(byte)))'") }
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private func peek() -> UInt8? {
        index < bytes.count ? bytes[index] : nil
    }

    private mutating func next() -> UInt8? {
        defer { index += 1 }
        return peek()
    }

    private func fail(_ what: String) -> Failure {
        Failure(reason: index >= bytes.count ? "\(what) at the end" : "\(what) at byte \(index)")
    }
}

extension Error {
    /// A one-line reason, without Foundation's nested coding-path dumps.
    var shortDescription: String {
        switch self as any Error {
        case DecodingError.keyNotFound(let key, let context):
            return "missing '\(key.stringValue)' at \(context.codingPath.map(\.stringValue).joined(separator: "."))"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "wrong type at \(context.codingPath.map(\.stringValue).joined(separator: "."))"
        case DecodingError.dataCorrupted:
            return "not JSON"
        default:
            return "\(self)"
        }
    }
}
