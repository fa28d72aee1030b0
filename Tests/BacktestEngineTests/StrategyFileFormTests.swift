import BacktestCore
import BacktestModel
import BacktestTestSupport
import Foundation
import Testing

/// `Strategy.fileForm()` is the strategy-file round trip (encode to JSON, decode) computed on the
/// model; a grid's base is read through it. Held equal to the round trip itself on the reference
/// strategies and on strategies generated with what the wire lets through and the file spells
/// differently: lower-case tickers, indicator types in any case, price fields named as
/// indicators, non-finite numbers, non-positive exit levels.
@Suite("Strategy file form")
struct StrategyFileFormTests {
    /// The round trip through Foundation JSON, as grids read their base before.
    static func roundTrip(_ strategy: Strategy) -> Result<Strategy, BacktestError> {
        let document: JSONValue
        do {
            document = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(strategy))
        } catch {
            return .failure(.invalidArgument("cannot be encoded: \(error)"))
        }
        return Result { () throws(BacktestError) in try VariantExpansion.strategy(from: document, label: "base") }
    }

    static func fileForm(_ strategy: Strategy) -> Result<Strategy, BacktestError> {
        Result { () throws(BacktestError) in try strategy.fileForm() }
    }

    /// Equal strategies, or errors at the same field with the same words (the round trip's
    /// message is prefixed by "variant base: "; encoding errors are Foundation's own words).
    static func expectSame(_ strategy: Strategy, _ comment: Comment? = nil) {
        switch (roundTrip(strategy), fileForm(strategy)) {
        case (.success(let expected), .success(let actual)):
            #expect(actual == expected, comment)
        case (.failure(let expected), .failure(let actual)):
            #expect(actual.code == expected.code, comment)
            if expected.message.hasPrefix("cannot be encoded") {
                #expect(actual.message.contains("must be finite"), "\(actual.message)")
            } else {
                #expect(actual.field == expected.field, "\(actual.field) vs \(expected.field)")
                #expect(expected.message == "variant base: " + actual.message, "\(actual.message) vs \(expected.message)")
            }
        case (let expected, let actual):
            Issue.record("round trip \(expected) but file form \(actual) for \(strategy)")
        }
    }

    struct Ignored: Decodable {
        init(from decoder: any Decoder) throws {}
    }

    @Test("the reference strategies")
    func referenceStrategies() throws {
        let cases = try ReferenceCase<Ignored>.load(SharedData.referenceDirectory.appendingPathComponent("backtests.json"))
        let stops = try ReferenceCase<Ignored>.load(StopsReferenceCase.fixture, listKey: "cases")
        #expect(cases.count + stops.count > 20)
        for reference in cases + stops {
            Self.expectSame(reference.file.strategy, "\(reference.id)")
        }
    }

    /// A strategy already in its file form comes back sharing its positions' storage (a grid's
    /// base is then held once); one position that changes (a lower-case ticker) is written alone.
    @Test("a strategy in file form shares its storage")
    func fileFormSharesStorage() throws {
        let cases = try ReferenceCase<Ignored>.load(SharedData.referenceDirectory.appendingPathComponent("backtests.json"))
        func address(_ strategy: Strategy) -> UnsafeRawPointer? {
            strategy.positions.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress) }
        }
        for reference in cases {
            let strategy = try reference.file.strategy.fileForm()
            let again = try strategy.fileForm()
            #expect(again == strategy)
            #expect(address(again) == address(strategy), "\(reference.id): the positions were copied")
            guard var lower = Optional(strategy), !lower.positions.isEmpty else { continue }
            lower.positions[0].ticker = lower.positions[0].ticker.lowercased()
            let fixed = try lower.fileForm()
            #expect(fixed == strategy)
            #expect(address(fixed) != address(lower))
        }
    }

    /// A seeded generator of strategies as the wire may carry them (EdgePropertyTests' SplitMix64).
    struct Generator: RandomNumberGenerator {
        var seeded: EdgePropertyTests.Generator
        init(state: UInt64) { seeded = EdgePropertyTests.Generator(state: state) }
        mutating func next() -> UInt64 { seeded.next() }

        mutating func pick<T>(_ items: [T]) -> T { items[Int.random(in: 0..<items.count, using: &self)] }
        mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &self) < p }

        mutating func number() -> Double {
            pick([0, -0.0, 1, 0.5, 1.0 / 3, 1e-300, 123_456.789, -2.5, 1e21, .pi, Double.random(in: -1000...1000, using: &self)])
        }

        mutating func spec() -> IndicatorSpec {
            pick([
                IndicatorSpec(type: "sma", params: [50]), IndicatorSpec(type: "SMA", params: [20]), IndicatorSpec(type: "Ema", params: [12.0]),
                IndicatorSpec(type: "rsi"), IndicatorSpec(type: "rsi", params: [14]), IndicatorSpec(type: "macd", params: [12, 26, 9], output: "signal"),
                IndicatorSpec(type: "MACD", params: [12, 26, 9], output: "Hist"), IndicatorSpec(type: "bbands", params: [20, 2.5], output: "upper"),
                IndicatorSpec(type: "obv"), IndicatorSpec(type: "close"), IndicatorSpec(type: "Volume"), IndicatorSpec(type: "sma", params: [50.5]),
                IndicatorSpec(type: "stoch", params: [14, 3, 3], output: "d"), IndicatorSpec(type: "atr", params: [14], output: "value"),
                IndicatorSpec(type: "nope", params: [3]), IndicatorSpec(type: "sma", params: [-1]), IndicatorSpec(type: "sma", params: [.nan]),
            ])
        }

        mutating func operand() -> Operand {
            if chance(0.3) { return .number(chance(0.05) ? pick([.nan, .infinity]) : number()) }
            let ticker: String? = chance(0.3) ? pick(["spy", "QQQ", "Msft", ""]) : nil
            let source: SeriesSource = chance(0.3) ? .field(pick(PriceField.allCases)) : .indicator(spec())
            return .series(SeriesRef(ticker: ticker, source: source))
        }

        mutating func condition(depth: Int = 0) -> Condition {
            guard depth < 3, chance(0.4) else { return .compare(lhs: operand(), op: pick(Comparison.allCases), rhs: operand()) }
            switch Int.random(in: 0..<3, using: &self) {
            case 0: return .all((0..<Int.random(in: 1...3, using: &self)).map { _ in condition(depth: depth + 1) })
            case 1: return .any((0..<Int.random(in: 1...3, using: &self)).map { _ in condition(depth: depth + 1) })
            default: return .not(condition(depth: depth + 1))
            }
        }

        mutating func level() -> Double? {
            chance(0.6) ? nil : pick([0.05, 0.2, 2, -0.1, 0, .nan])
        }

        mutating func strategy() -> Strategy {
            let positions = (0..<Int.random(in: 0...4, using: &self)).map { _ in
                Position(
                    ticker: pick(["AAPL", "aapl", "Msft", "BRK.B", "spy"]), weight: chance(0.03) ? .nan : number(),
                    entry: condition(), exit: chance(0.5) ? condition() : nil, direction: pick(PositionDirection.allCases),
                    sizing: pick(SizingMode.allCases), size: chance(0.5) ? 0 : number(),
                    exits: PriceExits(
                        stopLoss: level(), takeProfit: level(), trailingStop: level(),
                        atrPeriod: chance(0.7) ? nil : pick([14, 1, 0, -3]), maxBars: chance(0.7) ? nil : pick([5, 1, 0])))
            }
            return Strategy(
                name: pick(["", "golden cross", "ünïcode", "a\"quote"]), positions: positions, fill: pick(FillTiming.allCases),
                commissionBps: chance(0.02) ? .infinity : number(), slippageBps: number(), rebalance: pick(Rebalance.allCases),
                allowLeverage: chance(0.5))
        }
    }

    @Test("generated strategies, valid and not", arguments: 0..<4)
    func generatedStrategies(seed: UInt64) {
        var generator = Generator(state: seed)
        var (valid, invalid) = (0, 0)
        for i in 0..<500 {
            let strategy = generator.strategy()
            if case .success = Self.roundTrip(strategy) { valid += 1 } else { invalid += 1 }
            Self.expectSame(strategy, "seed \(seed) strategy \(i)")
        }
        // Both kinds are exercised.
        #expect(valid > 20 && invalid > 20, "\(valid) valid, \(invalid) invalid")
    }
}
