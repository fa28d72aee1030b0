import BacktestCore
import BacktestModel
import BacktestTestSupport
import Foundation
import Testing

@testable import BacktestEngine

/// shared/reference/indicators/TICKER.json: TA-Lib values (rounded to 10 decimals, hence the
/// absolute floor of the tolerance near zero).
private struct ReferenceIndicators: Decodable {
    var ticker: String
    var dates: [String]
    var close: [Double]
    var series: [String: [Double?]]
}

/// Fixtures/talib-*.json, written by scripts/generate-talib-fixtures.py (exact doubles).
private struct TALibFixture: Decodable {
    var ticker: String
    var count: Int
    var indices: [Int]
    var series: [String: [Double?]]
}

@Suite("Indicators against TA-Lib and the reference definitions", .offCooperativePool)
struct IndicatorReferenceTests {
    @Test("every series of the shared reference files", arguments: ["AAPL", "XOM", "SPY"])
    func sharedReference(ticker: String) throws {
        let reference = try SharedData.reference("indicators/\(ticker).json", as: ReferenceIndicators.self)
        let bars = try TestData.bars(ticker)
        try #require(bars.dates.map(\.iso) == reference.dates)
        #expect(reference.series.count >= 20)
        for (key, expected) in reference.series {
            let spec = try IndicatorSpec(parsing: key)
            #expect(spec.canonicalKey == key, "canonical form of \(key)")
            let values = try IndicatorCalculator.compute(spec, bars: bars)
            try #require(values.count == expected.count)
            var mismatches = 0
            for (i, value) in values.enumerated() where !TestData.close(value, expected[i] ?? .nan, tolerance: 1e-9) {
                if mismatches < 3 { Issue.record("\(ticker) \(key) at \(reference.dates[i]): \(value) vs \(String(describing: expected[i]))") }
                mismatches += 1
            }
            #expect(mismatches == 0, "\(ticker) \(key)")
        }
    }

    @Test("indicators the references lack, against TA-Lib 0.8 fixtures")
    func talibFixtures() throws {
        let fixture = try JSONDecoder().decode(TALibFixture.self, from: TestData.fixture("talib-MSFT.json"))
        let bars = try TestData.bars(fixture.ticker)
        try #require(bars.count == fixture.count)
        let covered = Set(fixture.series.keys.map { String($0.split(separator: ":")[0]) })
        #expect(covered.isSuperset(of: ["wma", "stoch", "adx", "obv", "highest", "lowest", "bbands"]))
        for (key, expected) in fixture.series {
            let values = try IndicatorCalculator.compute(try IndicatorSpec(parsing: key), bars: bars)
            var mismatches = 0
            for (j, i) in fixture.indices.enumerated() where !TestData.close(values[i], expected[j] ?? .nan, tolerance: 1e-9) {
                if mismatches < 3 { Issue.record("\(key) at \(bars.dates[i]): \(values[i]) vs \(String(describing: expected[j]))") }
                mismatches += 1
            }
            #expect(mismatches == 0, "\(key)")
        }
    }

    @Test("a value on a date does not depend on where later history ends")
    func causal() throws {
        let bars = try TestData.bars("AAPL")
        let cut = bars.slice(indices: 0..<3000)
        for key in ["ema:26", "rsi:14", "adx:14", "macd:12,26,9:signal", "max_drawdown:60"] {
            let spec = try IndicatorSpec(parsing: key)
            let full = try IndicatorCalculator.compute(spec, bars: bars)
            let prefix = try IndicatorCalculator.compute(spec, bars: cut)
            #expect(Array(full[0..<3000]).elementsEqual(prefix) { $0 == $1 || ($0.isNaN && $1.isNaN) }, "\(key)")
        }
    }

    @Test("canonical keys: defaults filled, outputs named, trailing .0 dropped")
    func canonicalKeys() throws {
        #expect(try IndicatorSpec(parsing: "SMA:50.0").canonicalKey == "sma:50")
        #expect(try IndicatorSpec(parsing: "rsi").canonicalKey == "rsi:14")
        #expect(try IndicatorSpec(parsing: "macd").canonicalKey == "macd:12,26,9:macd")
        #expect(try IndicatorSpec(parsing: "bbands:20,2.5:upper").canonicalKey == "bbands:20,2.5:upper")
        #expect(try IndicatorSpec(parsing: "obv").canonicalKey == "obv")
        #expect(try IndicatorSpec(parsing: "stoch:5,3,3:d").canonicalKey == "stoch:5,3,3:d")
        #expect(try IndicatorSpec(parsing: "macd:12,26,9") == IndicatorSpec(parsing: "macd:12,26,9:macd"))
        let key = try IndicatorKey(ticker: "SPY", spec: IndicatorSpec(type: "SMA", params: [200]))
        #expect(key.description == "SPY|sma:200")
    }

    @Test("bad indicator specs name the field at fault")
    func invalidSpecs() {
        let cases: [(IndicatorSpec, String)] = [
            (IndicatorSpec(type: "foo", params: [3]), "x.type"),
            (IndicatorSpec(type: "sma", params: [0]), "x.params[0]"),
            (IndicatorSpec(type: "sma", params: [2.5]), "x.params[0]"),
            (IndicatorSpec(type: "sma", params: [20, 3]), "x.params"),
            (IndicatorSpec(type: "bbands", params: [20, -1]), "x.params[1]"),
            (IndicatorSpec(type: "macd", params: [26, 12, 9]), "x.params"),
            (IndicatorSpec(type: "macd", params: [12, 26, 9], output: "foo"), "x.output"),
        ]
        for (spec, field) in cases {
            do {
                _ = try IndicatorCatalog.normalize(spec, field: "x")
                Issue.record("\(spec) accepted")
            } catch {
                #expect(error.code == .invalidArgument)
                #expect(error.field == field, "\(spec)")
            }
        }
    }
}
