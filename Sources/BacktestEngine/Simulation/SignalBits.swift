import BacktestModel

/// A boolean signal per calendar day packed 64 days to a word: bit `t % 64` of word `t / 64` is
/// day `t`. Bits past `count` are always 0, so the word operations below never leak past the
/// calendar. Conditions combine with one operation per 64 days (`all` = and, `any` = or, `not`),
/// and a sweep stores one such vector per unique condition (40 words for 10 years).
struct SignalBits: Sendable, Hashable {
    /// Number of days.
    let count: Int
    private(set) var words: [UInt64]

    /// `count` days, all false (`value == false`) or all true.
    init(count: Int, value: Bool = false) {
        self.count = count
        words = [UInt64](repeating: value ? ~0 : 0, count: (count + 63) / 64)
        if value { clearTail() }
    }

    private init(count: Int, words: [UInt64]) {
        self.count = count
        self.words = words
    }

    /// Packs `values` (one per day).
    init(_ values: [Bool]) {
        self.init(count: values.count)
        for t in values.indices where values[t] { words[t >> 6] |= 1 << UInt64(t & 63) }
    }

    @inline(__always)
    subscript(t: Int) -> Bool {
        words[t >> 6] >> UInt64(t & 63) & 1 != 0
    }

    /// The first day on or after `start` whose bit is set; nil when none is.
    func firstSet(from start: Int) -> Int? {
        guard start < count else { return nil }
        var w = max(start, 0) >> 6
        var word = words[w] & (~0 << UInt64(max(start, 0) & 63))
        while word == 0 {
            w += 1
            guard w < words.count else { return nil }
            word = words[w]
        }
        return w << 6 + word.trailingZeroBitCount
    }

    /// One `Bool` per day (tests and diagnostics).
    var bools: [Bool] { (0..<count).map { self[$0] } }

    /// The comparison `lhs[t] op rhs[t]` for every day (IEEE: false when either side is NaN);
    /// crossings compare with day t-1 too, and on day 0 with `previous` (the operands' values on
    /// the trading day before the calendar; NaN when unknown, which makes day 0 false). Both
    /// series have `count` values.
    static func compare(
        _ lhs: UnsafeBufferPointer<Double>, _ op: Comparison, _ rhs: UnsafeBufferPointer<Double>, count: Int,
        previous: (lhs: Double, rhs: Double) = (.nan, .nan)
    ) -> SignalBits {
        precondition(lhs.count >= count && rhs.count >= count, "series shorter than the calendar")
        guard count > 0, let l = lhs.baseAddress, let r = rhs.baseAddress else { return SignalBits(count: count) }
        switch op {
        case .greater: return pack(count) { l[$0] > r[$0] }
        case .greaterOrEqual: return pack(count) { l[$0] >= r[$0] }
        case .less: return pack(count) { l[$0] < r[$0] }
        case .lessOrEqual: return pack(count) { l[$0] <= r[$0] }
        case .crossesAbove:
            // l[t] > r[t] and l[t-1] <= r[t-1]: the second vector moved one day later.
            return pack(count) { l[$0] > r[$0] }
                & pack(count) { l[$0] <= r[$0] }.shiftedOneDayLater(first: previous.lhs <= previous.rhs)
        case .crossesBelow:
            return pack(count) { l[$0] < r[$0] }
                & pack(count) { l[$0] >= r[$0] }.shiftedOneDayLater(first: previous.lhs >= previous.rhs)
        }
    }

    /// `test(t)` for t in 0..<count, 64 tests to a word: a fixed-length inner loop without
    /// branches, which the compiler unrolls and vectorizes.
    @inline(__always)
    private static func pack(_ count: Int, _ test: (Int) -> Bool) -> SignalBits {
        let wordCount = (count + 63) / 64
        let words = [UInt64](unsafeUninitializedCapacity: wordCount) { out, initialized in
            let full = count / 64
            for w in 0..<full {
                let base = w << 6
                var word: UInt64 = 0
                for i in 0..<64 { word |= UInt64(test(base + i) ? 1 : 0) << UInt64(i) }
                out[w] = word
            }
            if full < wordCount {
                let base = full << 6
                var word: UInt64 = 0
                for i in 0..<(count - base) { word |= UInt64(test(base + i) ? 1 : 0) << UInt64(i) }
                out[full] = word
            }
            initialized = wordCount
        }
        return SignalBits(count: count, words: words)
    }

    /// Day t takes day t-1's value; day 0 takes `first`.
    private func shiftedOneDayLater(first: Bool) -> SignalBits {
        var words = self.words
        var carry: UInt64 = first ? 1 : 0
        for w in words.indices {
            let word = words[w]
            words[w] = word << 1 | carry
            carry = word >> 63
        }
        var result = SignalBits(count: count, words: words)
        result.clearTail()
        return result
    }

    static func & (a: SignalBits, b: SignalBits) -> SignalBits {
        a.combined(with: b) { $0 & $1 }
    }

    static func | (a: SignalBits, b: SignalBits) -> SignalBits {
        a.combined(with: b) { $0 | $1 }
    }

    static prefix func ~ (a: SignalBits) -> SignalBits {
        var result = SignalBits(count: a.count, words: a.words.map { ~$0 })
        result.clearTail()
        return result
    }

    /// `a & ~b` without the intermediate vector.
    static func andNot(_ a: SignalBits, _ b: SignalBits) -> SignalBits {
        a.combined(with: b) { $0 & ~$1 }
    }

    @inline(__always)
    private func combined(with other: SignalBits, _ op: (UInt64, UInt64) -> UInt64) -> SignalBits {
        precondition(count == other.count, "signals of different lengths")
        var words = self.words
        words.withUnsafeMutableBufferPointer { out in
            other.words.withUnsafeBufferPointer { b in
                for w in 0..<out.count { out[w] = op(out[w], b[w]) }
            }
        }
        return SignalBits(count: count, words: words)
    }

    private mutating func clearTail() {
        let tail = count & 63
        if tail != 0 { words[words.count - 1] &= (1 << UInt64(tail)) - 1 }
    }
}
