import BacktestClient
import BacktestCore
import BacktestModel
import BacktestProtocol
import BacktestRawClient
import NIOCore
import Testing

/// Issue #14 item 10 and issue #12 failures 4, 6, 8, 9, over real TCP with the real engine on the
/// shared files: every error names its field from the method (validation, decoding and data
/// errors alike), strings are checked on their real bytes, and a variant that cannot be decoded
/// fails alone.
@Suite("Field paths from the method, end to end", .timeLimit(.minutes(2)))
struct FieldPathSchemeTests {
    static let settings = BacktestSettings(start: TradingDate(iso: "2018-01-02")!, end: TradingDate(iso: "2018-12-31")!)
    static let close = Operand.series(SeriesRef(source: .field(.close)))

    static func strategy(
        ticker: String = "AAPL", weight: Double = 1, op: Comparison = .greater,
        lhs: Operand = close, rhs: Operand = .number(0)
    ) -> Strategy {
        Strategy(name: "s", positions: [Position(ticker: ticker, weight: weight, entry: .compare(lhs: lhs, op: op, rhs: rhs))])
    }
    static func indicator(_ type: String, _ params: [Double]) -> Operand {
        .series(SeriesRef(source: .indicator(IndicatorSpec(type: type, params: params))))
    }

    static let tickerRule = "a ticker is \(Ticker.syntax)"

    /// AAPL, always in, sized by `sizing` with `size`.
    static func sized(_ sizing: SizingMode, _ size: Double, leverage: Bool = false) -> Strategy {
        Strategy(
            name: "s", positions: [Position(ticker: "AAPL", weight: 1, entry: .compare(lhs: close, op: .greater, rhs: .number(0)), sizing: sizing, size: size)],
            allowLeverage: leverage)
    }

    /// The neighbours of the cases above run: cash equal to the capital, cash above it with
    /// allow_leverage, a capital of 1e12 (no false "flat benchmark"), a second position and a
    /// series ticker with data.
    @Test func theNeighboursOfTheBoundsRun() async throws {
        let fixture = try BatchFixture()
        var richest = Self.settings
        richest.initialCapital = 1e12
        let cross = Condition.compare(lhs: Self.indicator("sma", [5]), op: .greater, rhs: Self.indicator("sma", [10]))
        let cases: [(String, Strategy, BacktestSettings)] = [
            ("cash = capital", Self.sized(.cash, 100_000), Self.settings),
            ("cash above the capital with leverage", Self.sized(.cash, 150_000, leverage: true), Self.settings),
            ("1e12 shares with leverage", Self.sized(.shares, 1e12, leverage: true), richest),
            ("capital 1e12", Self.strategy(), richest),
            ("two known positions", Strategy(name: "s", positions: [
                Position(ticker: "AAPL", weight: 0.5, entry: cross), Position(ticker: "MSFT", weight: 0.5, entry: cross),
            ]), Self.settings),
            ("a known series ticker", Self.strategy(
                lhs: .series(SeriesRef(ticker: "MSFT", source: .indicator(IndicatorSpec(type: "sma", params: [5]))))), Self.settings),
        ]
        try await withServer(service: fixture.served) { _, port in
            let client = BacktestClient(port: port)
            for (what, strategy, settings) in cases {
                let result = try await client.runBacktest(strategy, settings: settings)
                #expect(!result.orders.isEmpty, "\(what)")
                #expect(!result.warnings.contains { $0.kind == .benchmarkFlat }, "\(what): \(result.warnings)")
            }
            await client.close()
        }
    }

    /// (what, strategy, settings, code, field, message) for RunBacktest.
    static let backtestCases: [(String, Strategy, BacktestSettings, StatusCode, String, String)] = {
        var backwards = settings
        backwards.end = backwards.start.advanced(by: -1)
        var lowerBenchmark = settings
        lowerBenchmark.benchmark = "spy"
        var noCapital = settings
        noCapital.initialCapital = -5
        var hugeCapital = settings
        hugeCapital.initialCapital = 1e308
        let smaCross = Condition.compare(lhs: indicator("sma", [5]), op: .greater, rhs: indicator("sma", [10]))
        let unknownSecond = Strategy(name: "s", positions: [
            Position(ticker: "AAPL", weight: 0.5, entry: smaCross), Position(ticker: "QQQQ", weight: 0.5, entry: smaCross),
        ])
        let unknownIndicatorSeries = strategy(
            lhs: .series(SeriesRef(ticker: "ZZZZ", source: .indicator(IndicatorSpec(type: "sma", params: [5])))))
        return [
            ("weight 0", strategy(weight: 0), settings, .invalidArgument,
             "run_backtest.strategy.positions[0].weight", "weight must be in (0, 1], got 0.0"),
            ("end before start", strategy(), backwards, .invalidArgument,
             "run_backtest.settings.end_date", "end date 2018-01-01 is before start date 2018-01-02"),
            ("negative capital", strategy(), noCapital, .invalidArgument,
             "run_backtest.settings.initial_capital", "initial capital must be a positive amount (0 = 100000), got -5.0"),
            ("lower-case benchmark", strategy(), lowerBenchmark, .invalidArgument,
             "run_backtest.settings.benchmark", "'spy' is not a ticker symbol; \(tickerRule); did you mean SPY?"),
            ("lower-case ticker", strategy(ticker: "aapl"), settings, .invalidArgument,
             "run_backtest.strategy.positions[0].ticker", "'aapl' is not a ticker symbol; \(tickerRule); did you mean AAPL?"),
            ("unknown indicator", strategy(rhs: indicator("smaa", [5])), settings, .invalidArgument,
             "run_backtest.strategy.positions[0].entry.compare.rhs.series.indicator.type",
             "unknown indicator 'smaa' (known: adx, atr, bbands, cumulative_return, ema, highest, lowest, macd, max_drawdown, obv, return_mean, return_stddev, roc, rsi, sma, stddev, stoch, wma)"),
            ("sma without its period", strategy(rhs: indicator("sma", [])), settings, .invalidArgument,
             "run_backtest.strategy.positions[0].entry.compare.rhs.series.indicator.params",
             "sma needs 1 parameter(s) (period), got 0: period missing; e.g. params [30]"),
            ("macd with one of three", strategy(lhs: indicator("macd", [12])), settings, .invalidArgument,
             "run_backtest.strategy.positions[0].entry.compare.lhs.series.indicator.params",
             "macd needs 3 parameter(s) (fast, slow, signal), got 1: slow, signal missing; e.g. params [12, 26, 9]"),
            ("a period out of range", strategy(lhs: indicator("rsi", [1])), settings, .invalidArgument,
             "run_backtest.strategy.positions[0].entry.compare.lhs.series.indicator.params[0]",
             "rsi period must be a whole number of bars in 2...10000, got 1"),
            ("two numbers", strategy(lhs: .number(1)), settings, .invalidArgument,
             "run_backtest.strategy.positions[0].entry.compare",
             "a comparison needs at least one series (price field or indicator)"),
            ("an unknown ticker", strategy(ticker: "NOSUCH"), settings, .notFound,
             "run_backtest.strategy.positions[0].ticker", "no market data for NOSUCH"),
            ("an unknown series ticker", strategy(rhs: .series(SeriesRef(ticker: "NOSUCH", source: .field(.close)))), settings, .notFound,
             "run_backtest.strategy.positions[0].entry.compare.rhs.series.ticker", "no market data for NOSUCH"),
            // An unknown ticker read only through indicators is named too (it was field '').
            ("an unknown second position read by indicators", unknownSecond, settings, .notFound,
             "run_backtest.strategy.positions[1].ticker", "no market data for QQQQ"),
            ("an unknown series ticker of an indicator", unknownIndicatorSeries, settings, .notFound,
             "run_backtest.strategy.positions[0].entry.compare.lhs.series.ticker", "no market data for ZZZZ"),
            // PROTOCOL.md §6: cash sizes above the capital need allow_leverage.
            ("cash above the capital", Self.sized(.cash, 1e9), settings, .invalidArgument,
             "run_backtest.strategy.positions[0].size",
             "cash sizes sum to 1000000000.0, above the initial capital 100000.0; set allow_leverage to buy on margin"),
            ("a share count above 1e12", Self.sized(.shares, 1e13, leverage: true), settings, .invalidArgument,
             "run_backtest.strategy.positions[0].size", "size must be a positive share count of at most 1e12 for sizing shares, got 10000000000000.0"),
            // A size a weight-sized position would ignore is said (a tester's 1e13).
            ("a size on a weight-sized position", Self.sized(.weight, 1e13), settings, .invalidArgument,
             "run_backtest.strategy.positions[0].size",
             "size is for sizing cash, shares or risk; this position is weight-sized (its weight decides): set sizing, or leave size out, got 10000000000000.0"),
            ("capital 1e308", strategy(), hugeCapital, .invalidArgument,
             "run_backtest.settings.initial_capital", "initial capital must be at most 1e12, got 1e+308"),
        ]
    }()

    @Test func runBacktestErrorsNameTheirFieldFromTheMethod() async throws {
        let fixture = try BatchFixture()
        try await withServer(service: fixture.served) { _, port in
            let client = BacktestClient(port: port)
            for (what, strategy, settings, code, field, message) in Self.backtestCases {
                let error = await #expect(throws: BacktestError.self, "\(what)") {
                    _ = try await client.runBacktest(strategy, settings: settings)
                }
                #expect(error?.code == code, "\(what)")
                #expect(error?.field == field, "\(what)")
                #expect(error?.message == message, "\(what)")
            }
            // A 4 MB ticker is echoed as a short, escaped prefix.
            let huge = String(repeating: "A", count: 4_000_000)
            let error = await #expect(throws: BacktestError.self) { _ = try await client.runBacktest(Self.strategy(ticker: huge), settings: Self.settings) }
            #expect(error?.field == "run_backtest.strategy.positions[0].ticker")
            #expect(error?.message == "'AAAAAAAAAAAAAAAA'... is not a ticker symbol; \(Self.tickerRule)")
            await client.close()
        }
    }

    @Test func batchErrorsNameTheVariantWhateverFoundThem() async throws {
        let fixture = try BatchFixture()
        try await withServer(service: fixture.served) { _, port in
            let client = BacktestClient(port: port)
            let variants = [
                Self.strategy(),
                Self.strategy(weight: 2),
                Self.strategy(ticker: "NOSUCH"),
                Self.strategy(rhs: .series(SeriesRef(ticker: "NOPE", source: .field(.close)))),
                Self.strategy(rhs: Self.indicator("sma", [])),
                Self.strategy(ticker: "MSFT"),
            ]
            let outcome = try await BatchOutcome.collect(client.runBatch(variants, settings: Self.settings))
            var errors: [Int: BacktestError] = [:]
            var succeeded: Set<Int> = []
            for result in outcome.updates.flatMap(\.results) {
                switch result.outcome {
                case .success: succeeded.insert(result.index)
                case .failure(let error): errors[result.index] = error
                }
            }
            #expect(succeeded == [0, 5])
            #expect(errors[1]?.field == "run_batch.variants[1].positions[0].weight")
            #expect(errors[2] == BacktestError(.notFound, "no market data for NOSUCH", field: "run_batch.variants[2].positions[0].ticker"))
            #expect(errors[3] == BacktestError(.notFound, "no market data for NOPE", field: "run_batch.variants[3].positions[0].entry.compare.rhs.series.ticker"))
            #expect(errors[4]?.field == "run_batch.variants[4].positions[0].entry.compare.rhs.series.indicator.params")

            // An unknown ticker read by an indicator, or cash above the capital, fails its variant
            // alone, FULL and SUMMARY alike; the others run.
            let unknownSeries = Self.strategy(
                lhs: .series(SeriesRef(ticker: "ZZZZ", source: .indicator(IndicatorSpec(type: "sma", params: [5])))))
            for detail in [ResultDetail.full, .summary] {
                let mixed = try await BatchOutcome.collect(client.runBatch(
                    [Self.strategy(), unknownSeries, Self.sized(.cash, 1e9), Self.sized(.cash, 1e5)], settings: Self.settings, detail: detail))
                var failures: [Int: BacktestError] = [:]
                var ran: Set<Int> = []
                for result in mixed.updates.flatMap(\.results) {
                    switch result.outcome {
                    case .success: ran.insert(result.index)
                    case .failure(let error): failures[result.index] = error
                    }
                }
                #expect(ran == [0, 3], "\(detail)")
                #expect(failures[1] == BacktestError(
                    .notFound, "no market data for ZZZZ", field: "run_batch.variants[1].positions[0].entry.compare.lhs.series.ticker"), "\(detail)")
                #expect(failures[2]?.code == .invalidArgument, "\(detail)")
                #expect(failures[2]?.field == "run_batch.variants[2].positions[0].size", "\(detail)")
            }

            // Settings are the batch's: every variant fails naming them.
            var backwards = Self.settings
            backwards.end = backwards.start.advanced(by: -1)
            let failed = try await BatchOutcome.collect(client.runBatch([Self.strategy(), Self.strategy()], settings: backwards))
            let fields = failed.updates.flatMap(\.results).compactMap { $0.outcome.failureValue?.field }
            #expect(fields == ["run_batch.settings.end_date", "run_batch.settings.end_date"])

            let unknown = await #expect(throws: BacktestError.self) { _ = try await client.batchStatus(id: "nope" + String(repeating: "x", count: 100)) }
            #expect(unknown?.field == "get_batch_status.batch_id")
            #expect(unknown?.message == "no batch with id 'nope\(String(repeating: "x", count: 60))'... on this server (never known, or gone before it restarted)")
            await client.close()
        }
    }

    @Test func gridErrorsNameTheBaseOrTheVariantOrTheAxisValue() async throws {
        let fixture = try BatchFixture()
        try await withServer(service: fixture.served) { _, port in
            let client = BacktestClient(port: port)
            func run(_ grid: Grid, _ detail: ResultDetail) async -> (BatchOutcome?, BacktestError?) {
                do {
                    return (try await BatchOutcome.collect(client.runSweep(grid, settings: Self.settings, detail: detail)), nil)
                } catch {
                    return (nil, error as? BacktestError)
                }
            }
            let weights = GridAxis(path: "positions[0].weight", values: ["0.5", "2"])
            let grid = Grid(base: Self.strategy(), axes: [GridAxis(path: "commission_bps", values: ["1"]), weights])
            // FULL results: each expanded variant runs (or fails) alone, as run_batch.variants[i].
            let (full, _) = await run(grid, .full)
            let failures = (full?.updates ?? []).flatMap(\.results).compactMap { $0.outcome.failureValue }
            #expect(failures == [.invalidArgument("weight must be in (0, 1], got 2.0", field: "run_batch.variants[1].positions[0].weight")])
            // SUMMARY results: axis values are checked once, up front; the value at fault is named.
            let (_, summary) = await run(grid, .summary)
            #expect(summary == .invalidArgument("positions[0].weight: weight must be in (0, 1], got 2.0", field: "run_batch.grid.axes[1].values[1]"))
            // An unknown ticker or cash above the capital in an axis value: FULL fails that
            // variant alone; SUMMARY names the value.
            for (axis, field, message) in [
                (GridAxis(path: "positions[0].ticker", values: ["AAPL", "ZZZZ"]), "positions[0].ticker", "no market data for ZZZZ"),
                (GridAxis(path: "positions[0].size", values: ["1000", "1e9"]), "positions[0].size",
                 "cash sizes sum to 1000000000.0, above the initial capital 100000.0; set allow_leverage to buy on margin"),
            ] {
                let sizedGrid = Grid(base: Self.sized(.cash, 1000), axes: [axis])
                let (fullRun, _) = await run(sizedGrid, .full)
                let results = (fullRun?.updates ?? []).flatMap(\.results)
                #expect(results.filter { $0.outcome.failureValue == nil }.map(\.index) == [0], "\(axis.path)")
                #expect(results.compactMap { $0.outcome.failureValue }.map(\.field) == ["run_batch.variants[1].\(field)"], "\(axis.path)")
                let (_, summaryError) = await run(sizedGrid, .summary)
                #expect(summaryError?.field == "run_batch.grid.axes[0].values[1]", "\(axis.path)")
                #expect(summaryError?.message == "\(field): \(message)", "\(axis.path)")
            }
            // The same on the last of three positions: a value is checked with that position
            // alone (`GridPlan.analysisChange`), and its errors name it in the base's terms.
            var three = Self.sized(.cash, 1000)
            three.positions += [three.positions[0], three.positions[0]]
            for (axis, field, message) in [
                (GridAxis(path: "positions[2].ticker", values: ["AAPL", "ZZZZ"]), "positions[2].ticker", "no market data for ZZZZ"),
                (GridAxis(path: "positions[2].size", values: ["1000", "1e9"]), "positions[2].size",
                 "cash sizes sum to 1000002000.0, above the initial capital 100000.0; set allow_leverage to buy on margin"),
                (GridAxis(path: "positions[2].weight", values: ["0.5", "0"]), "positions[2].weight", "weight must be in (0, 1], got 0.0"),
            ] {
                var base = three
                if axis.path.hasSuffix("weight") { base.positions = base.positions.map { var p = $0; p.sizing = .weight; p.weight = 0.25; p.size = 0; return p } }
                let (_, summaryError) = await run(Grid(base: base, axes: [axis]), .summary)
                #expect(summaryError?.field == "run_batch.grid.axes[0].values[1]", "\(axis.path)")
                #expect(summaryError?.message == "\(field): \(message)", "\(axis.path)")
            }
            // An indicator without parameters in the base is not the CLI's shorthand.
            let (_, base) = await run(Grid(base: Self.strategy(rhs: Self.indicator("sma", [])), axes: [weights]), .full)
            #expect(base?.field == "run_batch.grid.base_strategy.positions[0].entry.compare.rhs.series.indicator.params")
            await client.close()
        }
    }

    /// Issue #12 failure 8: PROTOCOL.md's 48 levels of conditions are the enforced limit, through
    /// the client, the decoder, validation and the engine.
    @Test func fortyEightLevelsOfConditionsRunAndFortyNineNameTheField() async throws {
        let fixture = try BatchFixture()
        func nested(_ levels: Int) -> Strategy {
            // close < 0, negated 23 times on the way up: close >= 0, always true.
            var condition = Condition.compare(lhs: Self.close, op: .less, rhs: .number(0))
            for level in 1..<levels { condition = level % 2 == 0 ? .not(condition) : .all([condition]) }
            return Strategy(name: "deep", positions: [Position(ticker: "AAPL", weight: 1, entry: condition)])
        }
        func levels(_ condition: Condition) -> Int {
            switch condition {
            case .compare: 1
            case .all(let members), .any(let members): 1 + members.map(levels).max()!
            case .not(let inner): 1 + levels(inner)
            }
        }
        let deepest = nested(48)
        #expect(levels(deepest.positions[0].entry) == 48)
        var tooDeep = deepest
        tooDeep.positions[0].entry = .not(deepest.positions[0].entry)
        try await withServer(service: fixture.served) { _, port in
            let client = BacktestClient(port: port)
            let result = try await client.runBacktest(deepest, settings: Self.settings)
            #expect(result.orders.count == 1, "always true: buys once and holds")
            let error = await #expect(throws: BacktestError.self) { _ = try await client.runBacktest(tooDeep, settings: Self.settings) }
            #expect(error?.code == .invalidArgument)
            #expect(error?.field == "run_backtest.strategy.positions[0].entry.not" + String(repeating: ".all.conditions[0].not", count: 23) + ".all.conditions[0]")
            #expect(error?.message.hasPrefix("conditions nest deeper than 48 levels") == true)
            await client.close()
        }
    }

    /// The request's bytes with the first `marker` byte after `occurrence - 1` others replaced.
    static func patched(_ request: CallRequest, _ from: [UInt8], _ to: [UInt8], occurrence: Int = 1) throws -> ByteBuffer {
        var bytes = Array(request.encoded().readableBytesView)
        var seen = 0
        for i in 0...(bytes.count - from.count) where Array(bytes[i..<(i + from.count)]) == from {
            seen += 1
            if seen == occurrence {
                bytes.replaceSubrange(i..<(i + from.count), with: to)
                return ByteBuffer(bytes: bytes)
            }
        }
        throw TestFailure("pattern not found")
    }

    static func status(of payload: ByteBuffer, port: Int) async throws -> (CallStatus, [ProgressUpdate]) {
        let (connection, _) = try await RawConnection.handshake(port: port)
        try await connection.send(Frame(type: .request, streamID: 1, payload: payload))
        var updates: [ProgressUpdate] = []
        while let frame = await connection.nextFrame(where: { $0.type == .response || $0.type == .data }) {
            if frame.type == .data { updates.append(try ProgressUpdate.decode(frame.payload)); continue }
            await connection.close()
            return (try CallResponse.decode(frame.payload).status, updates)
        }
        throw TestFailure("no RESPONSE")
    }

    @Test func controlCharactersOnTheWireAreInvalidArgumentNamingTheField() async throws {
        let fixture = try BatchFixture()
        try await withServer(service: fixture.served) { _, port in
            // "AAPL\0../../x": protobuf-c would hand over "AAPL"; the real bytes are checked.
            let ticker = CallRequest(method: .runBacktest(BacktestRequest(strategy: Self.strategy(ticker: "AAPL#../../x"), settings: Self.settings)))
            let (tickerStatus, _) = try await Self.status(of: Self.patched(ticker, Array("AAPL#".utf8), Array("AAPL\0".utf8)), port: port)
            #expect(tickerStatus.code == .invalidArgument)
            #expect(tickerStatus.field == "run_backtest.strategy.positions[0].ticker")
            #expect(tickerStatus.message.hasPrefix("ticker contains the control character U+0000 at byte 4 ('AAPL\\0../../x')"))

            var settings = Self.settings
            settings.benchmark = "SPY"
            let date = CallRequest(method: .runBacktest(BacktestRequest(strategy: Self.strategy(), settings: settings)))
            // start_date "2018-01-02" (field 1, 10 bytes) becomes "2018-01-0\0"; still 10 bytes.
            let (dateStatus, _) = try await Self.status(of: Self.patched(date, Array("2018-01-02".utf8), Array("2018-01-0\0".utf8)), port: port)
            #expect(dateStatus.field == "run_backtest.settings.start_date")
            #expect(dateStatus.message.hasPrefix("start_date contains the control character U+0000 at byte 9"))
        }
    }

    @Test func aVariantWithAnUnknownOpFailsAloneAndTheOthersRun() async throws {
        let fixture = try BatchFixture()
        try await withServer(service: fixture.served) { _, port in
            // Variant 1's op GREATER (field 2, varint 1: 10 01) becomes 99 (10 63); the others use LESS_EQUAL.
            let variants = [Self.strategy(op: .lessOrEqual), Self.strategy(op: .greater), Self.strategy(op: .lessOrEqual)]
            let request = CallRequest(method: .runBatch(BatchRequest(variants: variants, settings: Self.settings)))
            let (status, updates) = try await Self.status(of: Self.patched(request, [0x10, 0x01], [0x10, 0x63]), port: port)
            #expect(status.code == .ok)
            let results = updates.flatMap(\.results)
            #expect(results.count == 3)
            #expect(results.filter { $0.outcome.failureValue == nil }.map(\.index).sorted() == [0, 2])
            let error = results.first { $0.index == 1 }?.outcome.failureValue
            #expect(error?.field == "run_batch.variants[1].positions[0].entry.compare.op")
            #expect(error?.message == "op 99 is not a Comparison value; allowed: GREATER (1), GREATER_EQUAL (2), LESS (3), LESS_EQUAL (4), CROSSES_ABOVE (5), CROSSES_BELOW (6)")
        }
    }
}

extension Result {
    var failureValue: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
