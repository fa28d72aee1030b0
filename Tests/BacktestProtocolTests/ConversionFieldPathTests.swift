import BacktestCore
import BacktestModel
import BacktestProtocol
import NIOCore
import Testing

/// `StrategyConversion` carries a `FieldPath` and builds no path text unless it throws (issue 12):
/// the decoding errors the other suites do not reach name exactly the fields the string paths
/// named.
@Suite("Decoding errors name their field (FieldPath in the conversion)")
struct ConversionFieldPathTests {
    typealias R = RequestBytes
    typealias B = ProtoBytes

    static let prefix = "run_backtest.strategy.positions[0].entry"
    static func compare(lhs: [UInt8]?, rhs: [UInt8]?) -> [UInt8] {
        B.field(1, (lhs.map { B.field(1, $0) } ?? []) + B.varintField(2, 1) + (rhs.map { B.field(3, $0) } ?? []))
    }
    static func backtest(entry: [UInt8]) -> [UInt8] {
        R.runBacktest(strategy: R.strategy(positions: [R.position(entry: entry)]))
    }

    /// (what, request, field, message).
    static let cases: [(String, [UInt8], String, String)] = [
        ("an operand with neither value", backtest(entry: compare(lhs: [], rhs: R.double(1, 1))),
         "\(prefix).compare.lhs", "an operand needs a number or a series"),
        ("a missing rhs", backtest(entry: compare(lhs: B.field(2, R.closeSeries()), rhs: nil)),
         "\(prefix).compare.rhs", "\(prefix).compare.rhs is required"),
        ("a series with neither source", backtest(entry: compare(lhs: R.double(1, 1), rhs: B.field(2, B.string(1, "SPY")))),
         "\(prefix).compare.rhs.series", "a series needs a price field or an indicator"),
        ("an empty condition", backtest(entry: []),
         prefix, "a condition needs one of compare, all, any, not"),
        ("an empty any list under not", backtest(entry: R.not(B.field(3, []))),
         "\(prefix).not.any.conditions", "a condition list needs at least one condition"),
        ("an unset op deep in all/any", backtest(entry: R.all([R.compare(), B.field(3, B.field(1, R.compare()) + B.field(1, R.compare(op: [])))])),
         "\(prefix).all.conditions[1].any.conditions[1].compare.op", "a comparison operator is required"),
        ("direction 7 in the second position",
         R.runBacktest(strategy: R.strategy(positions: [R.position(), R.position() + B.varintField(5, 7)])),
         "run_backtest.strategy.positions[1].direction",
         "direction 7 is not a Direction value; allowed: DIRECTION_DEFAULT (0), DIRECTION_LONG (1), DIRECTION_SHORT (2)"),
        ("rebalance 9", R.runBacktest(strategy: R.strategy(extra: B.varintField(6, 9))),
         "run_backtest.strategy.rebalance", ""),
        ("an unset op in a grid's base strategy",
         R.grid(base: R.strategy(positions: [R.position(entry: R.compare(op: []))]), axes: [B.string(1, "commission_bps") + B.string(2, "1")]),
         "run_batch.grid.base_strategy.positions[0].entry.compare.op", "a comparison operator is required"),
        ("truncated bytes", [0x52, 0x05, 0x01],
         "", "CallRequest is not a valid protobuf message"),
    ]

    @Test(arguments: 0..<cases.count)
    func decodingErrorsNameTheirField(_ index: Int) throws {
        let (what, bytes, field, message) = Self.cases[index]
        let error = try #require(R.error(bytes), "\(what): decoded without an error")
        #expect(error.code == .invalidArgument, "\(what)")
        #expect(error.field == field, "\(what)")
        if !message.isEmpty { #expect(error.message == message, "\(what)") }
    }

    @Test func aBatchVariantsErrorNamesTheVariant() throws {
        let bytes = R.runBatch([R.strategy(), R.strategy(positions: [R.position(), R.position(entry: R.not(R.compare(op: [])))])])
        guard case .runBatch(let request) = try CallRequest.decode(ByteBuffer(bytes: bytes)).method.get() else {
            Issue.record("not a batch")
            return
        }
        #expect(request.invalidVariants.keys.sorted() == [1])
        #expect(request.invalidVariants[1]?.field == "run_batch.variants[1].positions[1].entry.not.compare.op")
    }
}
