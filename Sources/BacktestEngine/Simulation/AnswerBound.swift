import BacktestCore
import BacktestModel

/// A bound on how large a full result may grow before the engine gives up on it (issue 12):
/// the server's frame limit (`--max-frame-bytes`), applied to the result's orders alone.
///
/// An answer travels in one frame. A result whose orders alone, encoded as they sit in the
/// proto `BacktestResult` (field 5, `repeated Order orders`), exceed the limit cannot fit
/// whatever the rest of the answer holds, so the engine stops at its next cancellation check
/// with RESOURCE_EXHAUSTED instead of building (and the server encoding) an answer it must
/// refuse. The stop is never wrong: the orders are only part of the answer. A result under the
/// bound may still be refused for its total size after encoding, as before.
package struct AnswerBound: Sendable, Hashable {
    /// The largest answer, in bytes, that can be sent (the frame payload limit); nil for none.
    package var frameLimit: Int?

    /// No bound: tools, tests and benchmarks that keep results in process.
    package static let none = AnswerBound(frameLimit: nil)

    package init(frameLimit: Int?) {
        self.frameLimit = frameLimit
    }

    /// RESOURCE_EXHAUSTED for a result whose first `count` orders already take more bytes than
    /// the frame limit.
    package func exceeded(orders count: Int) -> BacktestError {
        BacktestError(.resourceExhausted,
            "the result's orders alone exceed the frame limit of \(frameLimit ?? 0) bytes (\(count) orders so far); shorten the range, use fewer positions or ask a batch for SUMMARY detail")
    }

    /// Bytes order `order` takes inside an encoded `BacktestResult`: the field's tag (1 byte),
    /// its length prefix and the `Order` message, fields at their default value (0, empty)
    /// omitted as protobuf-c omits them for proto3 fields (`double` fields compare equal to 0,
    /// so -0.0 is omitted too; NaN is not).
    package static func encodedSize(of order: Order) -> Int {
        encodedSize(date: order.date.yyyymmdd, tickerBytes: order.ticker.utf8.count, quantity: order.quantity,
                    price: order.price, commission: order.commission, reason: order.reason)
    }

    /// `encodedSize(of:)` from an order's parts (`tickerBytes`: the ticker's UTF-8 length).
    /// `side` is never SIDE_UNSPECIFIED (0): always 2 bytes.
    @inline(__always)
    package static func encodedSize(
        date: Int32, tickerBytes: Int, quantity: Double, price: Double, commission: Double, reason: OrderReason
    ) -> Int {
        // int32: a negative value is sign-extended to 10 bytes.
        var body = date == 0 ? 0 : 1 + (date < 0 ? 10 : varintSize(UInt64(date)))
        if tickerBytes > 0 { body += 1 + varintSize(UInt64(tickerBytes)) + tickerBytes }
        body += 2  // side (field 3, enum BUY = 1 / SELL = 2)
        if quantity != 0 { body += 9 }
        if price != 0 { body += 9 }
        if commission != 0 { body += 9 }
        if reason != .entry { body += 2 }  // field 7; ORDER_REASON_ENTRY is 0
        return 1 + varintSize(UInt64(body)) + body
    }

    /// Bytes of `value` as a protobuf varint.
    @inline(__always)
    static func varintSize(_ value: UInt64) -> Int {
        value == 0 ? 1 : (64 - value.leadingZeroBitCount + 6) / 7
    }
}

/// Adds up the encoded size of a result's orders as they are recorded (`FullRecorder`, the
/// reference engine), against an `AnswerBound`.
struct OrderBytesTally {
    let bound: AnswerBound
    /// Bytes of the orders counted so far.
    private(set) var bytes = 0
    private(set) var count = 0

    init(_ bound: AnswerBound) {
        self.bound = bound
    }

    @inline(__always)
    mutating func add(_ size: Int) {
        bytes += size
        count += 1
    }

    /// Counts the orders of `orders` after the `count` already counted (a list that only grows,
    /// such as the reference engine's book), then `check()`s. Does nothing without a bound.
    mutating func check(adding orders: [Order]) throws(BacktestError) {
        guard bound.frameLimit != nil else { return }
        for order in orders[count...] { add(AnswerBound.encodedSize(of: order)) }
        try check()
    }

    /// Throws the bound's RESOURCE_EXHAUSTED once the orders counted exceed the frame limit.
    @inline(__always)
    func check() throws(BacktestError) {
        if let limit = bound.frameLimit, bytes > limit { throw bound.exceeded(orders: count) }
    }
}
