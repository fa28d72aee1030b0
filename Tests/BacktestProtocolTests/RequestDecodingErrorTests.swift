import BacktestCore
import BacktestModel
import BacktestProtocol
import NIOCore
import Testing

/// Requests written byte by byte (independent of protobuf-c's encoder), for the decoder's errors.
enum RequestBytes {
    typealias B = ProtoBytes
    static func double(_ number: UInt64, _ value: Double) -> [UInt8] {
        B.varint(number << 3 | 1) + withUnsafeBytes(of: value.bitPattern.littleEndian, Array.init)
    }
    /// A varint field holding the 64-bit two's complement of `value` (an enum of -1 is 10 bytes).
    static func signed(_ number: UInt64, _ value: Int64) -> [UInt8] { B.varintField(number, UInt64(bitPattern: value)) }

    /// Series { ticker, field = CLOSE } or with an indicator { type, params }.
    static func closeSeries(ticker: String = "") -> [UInt8] {
        (ticker.isEmpty ? [] : B.string(1, ticker)) + B.varintField(2, 4)
    }
    static func indicatorSeries(type: String, params: [Double]) -> [UInt8] {
        let packed = params.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
        return B.field(3, B.string(1, type) + (params.isEmpty ? [] : B.field(2, packed)))
    }
    /// Condition { compare { lhs: series, op, rhs: number 1 } }.
    static func compare(lhs: [UInt8] = closeSeries(), op: [UInt8] = B.varintField(2, 1)) -> [UInt8] {
        B.field(1, B.field(1, B.field(2, lhs)) + op + B.field(3, double(1, 1)))
    }
    static func not(_ condition: [UInt8]) -> [UInt8] { B.field(4, condition) }
    static func all(_ conditions: [[UInt8]]) -> [UInt8] { B.field(2, conditions.flatMap { B.field(1, $0) }) }
    /// `levels` conditions nested through `not` (levels 1 = a bare compare).
    static func notChain(_ levels: Int) -> [UInt8] {
        var c = compare()
        for _ in 1..<levels { c = not(c) }
        return c
    }
    /// `levels` conditions nested through one-member `all` lists.
    static func allChain(_ levels: Int) -> [UInt8] {
        var c = compare()
        for _ in 1..<levels { c = all([c]) }
        return c
    }
    static func position(ticker: String = "AAPL", entry: [UInt8] = compare(), exit: [UInt8]? = nil) -> [UInt8] {
        B.string(1, ticker) + double(2, 1) + B.field(3, entry) + (exit.map { B.field(4, $0) } ?? [])
    }
    static func strategy(name: String = "s", positions: [[UInt8]] = [position()], extra: [UInt8] = []) -> [UInt8] {
        B.string(1, name) + positions.flatMap { B.field(2, $0) } + extra
    }
    static func settings(start: String = "2018-01-02", end: String = "2018-12-31", benchmark: String = "") -> [UInt8] {
        B.string(1, start) + B.string(2, end) + (benchmark.isEmpty ? [] : B.string(5, benchmark))
    }
    static func runBacktest(strategy: [UInt8] = strategy(), settings: [UInt8] = settings(), header: [UInt8] = []) -> [UInt8] {
        (header.isEmpty ? [] : B.field(1, header)) + B.field(10, B.field(1, strategy) + B.field(2, settings))
    }
    static func runBatch(_ variants: [[UInt8]], settings: [UInt8] = settings()) -> [UInt8] {
        B.field(11, variants.flatMap { B.field(1, $0) } + B.field(2, settings))
    }
    static func grid(base: [UInt8] = strategy(), axes: [[UInt8]]) -> [UInt8] {
        B.field(11, B.field(2, settings()) + B.field(21, B.field(1, base) + axes.flatMap { B.field(2, $0) }))
    }

    /// The decoder's error for `bytes`, whether the whole request failed or only its method.
    static func error(_ bytes: [UInt8]) -> BacktestError? {
        do {
            return try CallRequest.decode(ByteBuffer(bytes: bytes)).method.failureValue
        } catch {
            return error as? BacktestError
        }
    }
}

@Suite("Request decoding errors: field paths, strings, nesting, per-variant faults")
struct RequestDecodingErrorTests {
    typealias R = RequestBytes
    static let controls = "strings in a request may not contain control characters (U+0000-U+001F, U+007F-U+009F)"
    static let comparisons = "allowed: GREATER (1), GREATER_EQUAL (2), LESS (3), LESS_EQUAL (4), CROSSES_ABOVE (5), CROSSES_BELOW (6)"

    /// (what, request bytes, field, message): every fault found while decoding names its field
    /// from the method, with the message a person reads.
    static let cases: [(String, [UInt8], String, String)] = [
        ("NUL in a position's ticker", R.runBacktest(strategy: R.strategy(positions: [R.position(), R.position(ticker: "AAPL\u{0}../../x")])),
         "run_backtest.strategy.positions[1].ticker",
         "ticker contains the control character U+0000 at byte 4 ('AAPL\\0../../x'); \(controls)"),
        ("NUL in the start date", R.runBacktest(settings: R.settings(start: "2018-01-02\u{0}junk")),
         "run_backtest.settings.start_date",
         "start_date contains the control character U+0000 at byte 10 ('2018-01-02\\0junk'); \(controls)"),
        ("newline in the end date", R.runBacktest(settings: R.settings(end: "2018-12-31\n")),
         "run_backtest.settings.end_date",
         "end_date contains the control character U+000A at byte 10 ('2018-12-31\\n'); \(controls)"),
        ("newline in the strategy name (a forged log line)", R.runBacktest(strategy: R.strategy(name: "x\nINFO fake")),
         "run_backtest.strategy.name",
         "name contains the control character U+000A at byte 1 ('x\\nINFO fake'); \(controls)"),
        ("C1 control in the strategy name", R.runBacktest(strategy: R.strategy(name: "ab\u{85}")),
         "run_backtest.strategy.name",
         "name contains the control character U+0085 at byte 2 ('ab\\u{0085}'); \(controls)"),
        ("DEL in the request id", R.runBacktest(header: ProtoBytes.string(2, "r\u{7F}")),
         "header.request_id",
         "request_id contains the control character U+007F at byte 1 ('r\\u{7F}'); \(controls)"),
        ("GetVariantResults naming nothing", ProtoBytes.field(20, ProtoBytes.string(1, "b")),
         "get_variant_results.indices", "name the variants: indices, or best_by with best_count"),
        ("best_count without best_by: the missing field is best_by", ProtoBytes.field(20, ProtoBytes.string(1, "b") + ProtoBytes.varintField(4, 5)),
         "get_variant_results.best_by",
         "best_count needs best_by, a metric: one of total_return, cagr, volatility, sharpe, sortino, max_drawdown, calmar, alpha, beta, win_rate, profit_factor, trade_count, exposure, final_equity"),
        ("indices and best_count", ProtoBytes.field(20, ProtoBytes.string(1, "b") + ProtoBytes.varintField(2, 1) + ProtoBytes.varintField(4, 5)),
         "get_variant_results.best_count", "set either indices or best_by with best_count, not both"),
        ("best_by without best_count", ProtoBytes.field(20, ProtoBytes.string(1, "b") + ProtoBytes.string(3, "sharpe")),
         "get_variant_results.best_count", "best_count must be at least 1"),
        ("escape in a batch id", ProtoBytes.field(12, ProtoBytes.string(1, "ab\u{1B}[31m")),
         "get_batch_status.batch_id",
         "batch_id contains the control character U+001B at byte 2 ('ab\\u{1B}[31m'); \(controls)"),
        ("tab in a cancelled batch id", ProtoBytes.field(15, ProtoBytes.string(1, "\tx")),
         "cancel_batch.batch_id",
         "batch_id contains the control character U+0009 at byte 0 ('\\tx'); \(controls)"),
        ("NUL in a series' ticker", R.runBacktest(strategy: R.strategy(positions: [R.position(entry: R.compare(lhs: R.closeSeries(ticker: "SPY\u{0}")))])),
         "run_backtest.strategy.positions[0].entry.compare.lhs.series.ticker",
         "ticker contains the control character U+0000 at byte 3 ('SPY\\0'); \(controls)"),
        ("NUL in an indicator type (a series key)", R.runBacktest(strategy: R.strategy(positions: [R.position(entry: R.compare(lhs: R.indicatorSeries(type: "sma\u{0}", params: [5])))])),
         "run_backtest.strategy.positions[0].entry.compare.lhs.series.indicator.type",
         "type contains the control character U+0000 at byte 3 ('sma\\0'); \(controls)"),
        ("invalid UTF-8 in the benchmark", R.runBacktest(settings: R.settings() + ProtoBytes.field(5, [0x53, 0xFF])),
         "run_backtest.settings.benchmark",
         "benchmark is not valid UTF-8; strings in a request are UTF-8 text without control characters"),
        ("NUL in a grid axis path", R.grid(axes: [ProtoBytes.string(1, "commission_bps") + ProtoBytes.string(2, "1"), ProtoBytes.string(1, "name\u{0}")]),
         "run_batch.grid.axes[1].path",
         "path contains the control character U+0000 at byte 4 ('name\\0'); \(controls)"),
        ("NUL in a grid axis value", R.grid(axes: [ProtoBytes.string(1, "name") + ProtoBytes.string(2, "a") + ProtoBytes.string(2, "b\u{0}")]),
         "run_batch.grid.axes[0].values[1]",
         "values contains the control character U+0000 at byte 1 ('b\\0'); \(controls)"),
        ("op -1", R.runBacktest(strategy: R.strategy(positions: [R.position(entry: R.compare(op: R.signed(2, -1)))])),
         "run_backtest.strategy.positions[0].entry.compare.op",
         "op -1 is not a Comparison value; \(comparisons)"),
        ("op 99 in an exit's all list", R.runBacktest(strategy: R.strategy(positions: [R.position(exit: R.all([R.compare(), R.compare(op: R.signed(2, 99))]))])),
         "run_backtest.strategy.positions[0].exit.all.conditions[1].compare.op",
         "op 99 is not a Comparison value; \(comparisons)"),
        ("fill 7", R.runBacktest(strategy: R.strategy(extra: ProtoBytes.varintField(3, 7))),
         "run_backtest.strategy.fill",
         "fill 7 is not a FillTiming value; allowed: FILL_TIMING_DEFAULT (0), FILL_NEXT_OPEN (1), FILL_CLOSE (2)"),
        ("price field 9", R.runBacktest(strategy: R.strategy(positions: [R.position(entry: R.not(R.compare(lhs: ProtoBytes.varintField(2, 9)))) ])),
         "run_backtest.strategy.positions[0].entry.not.compare.lhs.series.field",
         "field 9 is not a PriceField value; allowed: OPEN (1), HIGH (2), LOW (3), CLOSE (4), VOLUME (5)"),
        ("adjustment -2", R.runBacktest(settings: R.settings() + R.signed(4, -2)),
         "run_backtest.settings.adjustment",
         "adjustment -2 is not a PriceAdjustment value; allowed: ADJUSTMENT_DEFAULT (0), ADJUSTMENT_RAW (1), ADJUSTMENT_SPLIT (2), ADJUSTMENT_ALL (3)"),
        ("a batch's result detail 5", ProtoBytes.field(11, ProtoBytes.field(2, R.settings()) + ProtoBytes.varintField(20, 5)),
         "run_batch.detail",
         "detail 5 is not a ResultDetail value; allowed: RESULT_DETAIL_DEFAULT (0), RESULT_DETAIL_SUMMARY (1), RESULT_DETAIL_FULL (2)"),
        ("op unset", R.runBacktest(strategy: R.strategy(positions: [R.position(entry: R.compare(op: []))])),
         "run_backtest.strategy.positions[0].entry.compare.op", "a comparison operator is required"),
        ("entry missing", R.runBacktest(strategy: R.strategy(positions: [ProtoBytes.string(1, "AAPL")])),
         "run_backtest.strategy.positions[0].entry", "run_backtest.strategy.positions[0].entry is required"),
        ("empty all list", R.runBacktest(strategy: R.strategy(positions: [R.position(entry: ProtoBytes.field(2, []))])),
         "run_backtest.strategy.positions[0].entry.all.conditions", "a condition list needs at least one condition"),
        ("a bad end date", R.runBacktest(settings: R.settings(end: "2018-13-01")),
         "run_backtest.settings.end_date", "'2018-13-01' is not a date of the form YYYY-MM-DD"),
        ("a 1 MB start date is echoed as a short prefix", R.runBacktest(settings: R.settings(start: "2018-01-0" + String(repeating: "9", count: 1 << 20))),
         "run_backtest.settings.start_date", "'2018-01-09999999'... is not a date of the form YYYY-MM-DD"),
    ]

    @Test(arguments: 0..<cases.count)
    func faultsNameTheirField(_ index: Int) throws {
        let (what, bytes, field, message) = Self.cases[index]
        let error = try #require(R.error(bytes), "\(what): decoded without an error")
        #expect(error.code == .invalidArgument, "\(what)")
        #expect(error.field == field, "\(what)")
        #expect(error.message == message, "\(what)")
    }

    @Test func conditionsNestExactlyFortyEightLevelsThroughNot() throws {
        let deepest = R.runBacktest(strategy: R.strategy(positions: [R.position(entry: R.notChain(48))]))
        #expect(try CallRequest.decode(ByteBuffer(bytes: deepest)).method.get().name == "RunBacktest")
        let tooDeep = R.runBacktest(strategy: R.strategy(positions: [R.position(entry: R.notChain(49))]))
        let error = try #require(R.error(tooDeep))
        #expect(error.code == .invalidArgument)
        #expect(error.field == "run_backtest.strategy.positions[0].entry" + String(repeating: ".not", count: 48))
        #expect(error.message == "conditions nest deeper than 48 levels (a position's entry or exit is level 1; each all, any or not inside adds one)")
    }

    @Test func conditionsNestExactlyFortyEightLevelsThroughAllEvenInAGridBase() throws {
        // all { conditions: [all { ... }] }: two messages per level, on the longest path to a
        // condition (CallRequest → run_batch → grid → base_strategy → positions → exit).
        let axis = ProtoBytes.string(1, "commission_bps") + ProtoBytes.string(2, "1")
        let deepest = R.grid(base: R.strategy(positions: [R.position(exit: R.allChain(48))]), axes: [axis])
        #expect(try CallRequest.decode(ByteBuffer(bytes: deepest)).method.get().name == "RunBatch")
        let tooDeep = R.grid(base: R.strategy(positions: [R.position(exit: R.allChain(49))]), axes: [axis])
        let error = try #require(R.error(tooDeep))
        #expect(error.field == "run_batch.grid.base_strategy.positions[0].exit" + String(repeating: ".all.conditions[0]", count: 48))
        #expect(error.message.hasPrefix("conditions nest deeper than 48 levels"))
        // The same bound through `any` and mixed kinds.
        var mixed = R.compare()
        for level in 1..<48 { mixed = level % 2 == 0 ? R.not(mixed) : ProtoBytes.field(3, ProtoBytes.field(1, mixed)) }
        #expect(R.error(R.runBacktest(strategy: R.strategy(positions: [R.position(entry: mixed)]))) == nil)
        #expect(R.error(R.runBacktest(strategy: R.strategy(positions: [R.position(entry: R.not(mixed))])))?.message.hasPrefix("conditions nest deeper") == true)
    }

    @Test func aVariantThatCannotBeDecodedFailsAloneAndTheOthersDecode() throws {
        let good = R.strategy(name: "good")
        let bytes = R.runBatch([
            good,
            R.strategy(name: "bad op", positions: [R.position(entry: R.compare(op: R.signed(2, -1)))]),
            good,
            R.strategy(name: "nul\u{0}"),
            R.strategy(name: "deep", positions: [R.position(entry: R.notChain(49))]),
            R.strategy(name: "bad fill", extra: ProtoBytes.varintField(3, 3)),
            good,
        ])
        let method = try CallRequest.decode(ByteBuffer(bytes: bytes)).method.get()
        guard case .runBatch(let request) = method else { Issue.record("not a batch: \(method)"); return }
        #expect(request.variants.count == 7)
        #expect(Set(request.invalidVariants.keys) == [1, 3, 4, 5])
        #expect(request.invalidVariants[1] == .invalidArgument("op -1 is not a Comparison value; \(Self.comparisons)",
                                                                field: "run_batch.variants[1].positions[0].entry.compare.op"))
        #expect(request.invalidVariants[3]?.field == "run_batch.variants[3].name")
        #expect(request.invalidVariants[4]?.field == "run_batch.variants[4].positions[0].entry" + String(repeating: ".not", count: 48))
        #expect(request.invalidVariants[5]?.field == "run_batch.variants[5].fill")
        for index in [0, 2, 6] {
            #expect(request.variants[index].name == "good")
            #expect(request.variants[index].positions.map(\.ticker) == ["AAPL"])
        }
    }

    @Test func faultsOutsideTheVariantsStillFailTheWholeBatch() throws {
        let bytes = R.runBatch([R.strategy()], settings: R.settings(start: "2018-01-02\u{0}"))
        #expect(R.error(bytes)?.field == "run_batch.settings.start_date")
    }

    @Test func responsesMayCarryAnyText() throws {
        // The string rule is for requests: an answer's text is not checked.
        let response = CallResponse(status: CallStatus(code: .notFound, message: "a\tb"))
        #expect(try CallResponse.decode(response.encoded()).status.message == "a\tb")
    }

    /// protoc-c 1.4.1 cannot generate proto3 `optional` fields, so an undefined metric travels as
    /// NaN, which PROTOCOL.md defines as "absent": it must arrive as NaN, not 0.
    @Test func undefinedMetricsTravelAsNaN() throws {
        var metrics = Metrics()
        metrics.winRate = .nan
        metrics.profitFactor = .nan
        metrics.sharpe = .nan
        metrics.totalReturn = 0.25
        let result = BacktestResult(
            strategyName: "b&h", dates: [], equity: [], benchmark: [], orders: [], metrics: metrics, benchmarkMetrics: metrics,
            warnings: [], stats: RunStatistics(), initialCapital: 100_000, benchmarkTicker: "SPY", dataSource: "files")
        let response = CallResponse(status: .ok, result: .backtest(result))
        guard case .backtest(let decoded)? = try CallResponse.decode(response.encoded()).result else {
            Issue.record("no result"); return
        }
        #expect(decoded.metrics.winRate.isNaN && decoded.metrics.profitFactor.isNaN && decoded.metrics.sharpe.isNaN)
        #expect(decoded.metrics.totalReturn == 0.25)
        #expect(decoded.metrics == metrics)
    }
}
