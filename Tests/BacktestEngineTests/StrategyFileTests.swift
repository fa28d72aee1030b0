import BacktestCore
import BacktestModel
import Foundation
import Testing

@testable import BacktestEngine

@Suite("Strategy files (JSON)")
struct StrategyFileTests {
    static let full = """
        {"name": "regime momentum", "start": "2010-01-04", "end": "2015-12-31", "initial_capital": 50000,
         "adjustment": "all", "benchmark": "qqq", "fill": "next_open", "commission_bps": 5, "slippage_bps": 2.5,
         "rebalance": "monthly", "allow_leverage": true,
         "positions": [
           {"ticker": "AAPL", "weight": 0.6,
            "entry": {"all": [
               {"lhs": "close", "op": "crosses_above", "rhs": "ema:20"},
               {"lhs": "close", "op": ">", "rhs": "sma:200", "ticker": "spy"},
               {"not": {"lhs": "rsi:14", "op": ">=", "rhs": 80}}]},
            "exit": {"any": [
               {"lhs": "close", "op": "crosses_below", "rhs": "ema:20"},
               {"lhs": {"series": "volume", "ticker": "SPY"}, "op": "<=", "rhs": 1000000},
               {"lhs": "macd:12,26,9:hist", "op": "<", "rhs": {"indicator": {"type": "bbands", "params": [20, 2], "output": "upper"}}}]}},
           {"ticker": "MSFT", "weight": 0.6, "entry": {"lhs": "open", "op": "<", "rhs": "high"}}]}
        """

    @Test("every construct decodes to the model")
    func decodesEverything() throws {
        let file = try StrategyFile.decode(Data(Self.full.utf8))
        let strategy = file.strategy
        #expect(strategy.name == "regime momentum")
        #expect(strategy.fill == .nextOpen && strategy.rebalance == .monthly && strategy.allowLeverage)
        #expect(strategy.commissionBps == 5 && strategy.slippageBps == 2.5)
        #expect(file.start == TestData.date("2010-01-04") && file.end == TestData.date("2015-12-31"))
        #expect(file.initialCapital == 50_000 && file.adjustment == .all && file.benchmark == "QQQ")
        #expect(strategy.positions.count == 2)
        guard case .all(let members) = strategy.positions[0].entry else {
            Issue.record("entry is not 'all'")
            return
        }
        #expect(members[0] == compare(series("close"), .crossesAbove, series("ema:20")))
        #expect(members[1] == compare(series("close", "SPY"), .greater, series("sma:200", "SPY")))
        #expect(members[2] == .not(compare(series("rsi:14"), .greaterOrEqual, .number(80))))
        guard case .any(let exits) = strategy.positions[0].exit else {
            Issue.record("exit is not 'any'")
            return
        }
        #expect(exits[1] == compare(series("volume", "SPY"), .lessOrEqual, .number(1_000_000)))
        #expect(exits[2] == compare(series("macd:12,26,9:hist"), .less, series("bbands:20,2:upper")))
        let settings = file.settings(defaults: BacktestSettings(start: TestData.date("2000-01-03"), end: TestData.date("2001-01-03")))
        #expect(settings.start == TestData.date("2010-01-04") && settings.initialCapital == 50_000 && settings.benchmark == "QQQ")
    }

    /// A direction or sizing that is not one says which are (it used to be Foundation's
    /// "Cannot initialize PositionDirection from invalid String value sideways"); any case reads.
    @Test(arguments: [("direction", "sideways", "long, short"), ("sizing", "bogus", "weight, cash, shares, risk")])
    func anUnknownDirectionOrSizingNamesTheAllowedValues(key: String, value: String, allowed: String) throws {
        let text = #"{"positions": [{"ticker": "AAPL", "entry": {"lhs": "close", "op": ">", "rhs": 1}, "\#(key)": "\#(value)"}]}"#
        let error = #expect(throws: BacktestError.self) { try StrategyFile.decode(Data(text.utf8)) }
        #expect(error?.field == "positions[0].\(key)")
        #expect(error?.message == "'\(value)' is not a valid \(key) (expected one of: \(allowed))", "\(error?.message ?? "")")
        let upper = #"{"positions": [{"ticker": "AAPL", "entry": {"lhs": "close", "op": ">", "rhs": 1}, "direction": "SHORT", "sizing": "Cash", "size": 5}]}"#
        let position = try StrategyFile.decode(Data(upper.utf8)).strategy.positions[0]
        #expect(position.direction == .short && position.sizing == .cash)
    }

    @Test("encoding round-trips")
    func roundTrip() throws {
        let file = try StrategyFile.decode(Data(Self.full.utf8))
        let encoded = try JSONEncoder().encode(file)
        #expect(try StrategyFile.decode(encoded) == file)
    }

    @Test("stops, shorts and sizing decode, encode only when set, and vary on a grid")
    func stopsShortsSizing() throws {
        let text = """
            {"positions": [{"ticker": "aapl", "entry": {"lhs": "close", "op": ">", "rhs": "sma:20"},
              "direction": "short", "sizing": "risk", "size": 0.01, "stop_loss": 2, "take_profit": 3,
              "trailing_stop": 2.5, "stop_atr_period": 14, "max_bars": 20}]}
            """
        let position = try StrategyFile.decode(Data(text.utf8)).strategy.positions[0]
        #expect(position.direction == .short && position.sizing == .risk && position.size == 0.01)
        #expect(position.exits == PriceExits(stopLoss: 2, takeProfit: 3, trailingStop: 2.5, atrPeriod: 14, maxBars: 20))
        let file = try StrategyFile.decode(Data(text.utf8))
        #expect(try StrategyFile.decode(try JSONEncoder().encode(file)) == file)
        // A plain position's JSON has none of the new keys.
        let plain = try StrategyFile.decode(Data(Self.full.utf8))
        let encoded = String(decoding: try JSONEncoder().encode(plain), as: UTF8.self)
        for key in ["direction", "sizing", "\"size\"", "stop_loss", "take_profit", "trailing_stop", "stop_atr_period", "max_bars"] {
            #expect(!encoded.contains(key), "\(key) in \(encoded)")
        }
        #expect(throws: BacktestError.self) { try StrategyFile.decode(Data(text.replacingOccurrences(of: "\"short\"", with: "\"sideways\"").utf8)) }
        // A stop x target grid: typed slots give what the JSON path gives.
        let grid = Grid(base: file.strategy, axes: [
            GridAxis(path: "positions[0].stop_loss", values: ["1", "1.5"]),
            GridAxis(path: "positions[*].take_profit", values: ["2", "4"]),
            GridAxis(path: "positions[0].max_bars", values: ["5", "10"]),
        ])
        let plan = try GridPlan(grid)
        #expect(plan.count == 8)
        let last = try plan.strategy(7)
        #expect(last.positions[0].exits == PriceExits(stopLoss: 1.5, takeProfit: 4, trailingStop: 2.5, atrPeriod: 14, maxBars: 10))
        let first = try plan.strategy(0)
        #expect(first.positions[0].exits.stopLoss == 1 && first.positions[0].exits.takeProfit == 2 && first.positions[0].exits.maxBars == 5)
        // Counts in grid values are whole numbers the wire's int32 holds, one place or all.
        for (path, value, message) in [
            ("positions[0].max_bars", "2.5", "max_bars must be a whole number up to 2147483647, got 2.5"),
            ("positions[*].max_bars", "1e10", "max_bars must be a whole number up to 2147483647, got 10000000000.0"),
            ("positions[0].stop_atr_period", "2147483648", "stop_atr_period must be a whole number up to 2147483647"),
        ] {
            let bad = Grid(base: file.strategy, axes: [GridAxis(path: path, values: ["5", value])])
            let error = try #require(throws: BacktestError.self) { _ = try GridPlan(bad) }
            #expect(error.field == "grid.axes[0].values[1]", "\(error)")
            #expect(error.message.contains(message), "\(error.message)")
        }
    }

    @Test("a variant decodes as a Strategy; settings keys are refused there")
    func variant() throws {
        let json = #"{"name": "v1", "fill": "close", "positions": [{"ticker": "SPY", "entry": {"lhs": "close", "op": ">", "rhs": "sma:200"}}]}"#
        let strategy = try JSONDecoder().decode(Strategy.self, from: Data(json.utf8))
        #expect(strategy.name == "v1" && strategy.fill == .close)
        #expect(try JSONDecoder().decode(Strategy.self, from: JSONEncoder().encode(strategy)) == strategy)
        let withSettings = #"{"start": "2010-01-04", "positions": []}"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Strategy.self, from: Data(withSettings.utf8)) }
    }

    @Test("defaults: next_open fill, no costs, no rebalancing, no settings")
    func defaults() throws {
        let file = try StrategyFile.decode(Data(#"{"positions": [{"ticker": "SPY", "entry": {"lhs": "close", "op": ">", "rhs": "sma:200"}}]}"#.utf8))
        #expect(file.strategy.fill == .nextOpen && file.strategy.rebalance == .none && file.strategy.commissionBps == 0)
        #expect(file.strategy.positions[0].weight == 1 && file.strategy.positions[0].exit == nil)
        #expect(file.start == nil && file.initialCapital == nil)
    }

    @Test("exit levels: present and positive, or absent (none)")
    func exitLevelsPresentOrAbsent() throws {
        let set = try StrategyFile.decode(Data(#"{"positions": [{"ticker": "A", "stop_loss": 0.05, "take_profit": 0.1, "trailing_stop": 0.02, "max_bars": 1, "entry": {"lhs": "close", "op": ">", "rhs": 1}}]}"#.utf8))
        #expect(set.strategy.positions[0].exits == PriceExits(stopLoss: 0.05, takeProfit: 0.1, trailingStop: 0.02, maxBars: 1))
        let absent = try StrategyFile.decode(Data(#"{"positions": [{"ticker": "A", "entry": {"lhs": "close", "op": ">", "rhs": 1}}]}"#.utf8))
        #expect(absent.strategy.positions[0].exits == PriceExits())
    }

    @Test("errors say what and where", arguments: [
        (#"{"positions": [{"ticker": "A", "entry": {"lhs": "close", "op": "=>", "rhs": 1}}]}"#, "positions[0].entry.op", "unknown operator"),
        (#"{"comission_bps": 5, "positions": []}"#, "comission_bps", "unknown key"),
        (#"{"positions": [{"ticker": "A", "entry": {"lhs": "smaa:50", "op": ">", "rhs": 1}}]}"#, "positions[0].entry.lhs", "smaa"),
        (#"{"positions": [{"ticker": "A", "entry": {"lhs": "sma:50:upper", "op": ">", "rhs": 1}}]}"#, "positions[0].entry.lhs", "output"),
        (#"{"positions": [{"ticker": "A"}]}"#, "positions[0].entry", "missing"),
        (#"{"start": "2020-13-01", "positions": []}"#, "start", "YYYY-MM-DD"),
        (#"{"fill": "tomorrow", "positions": []}"#, "fill", "next_open"),
        (#"{"positions": [{"ticker": "A", "weight": "half", "entry": {"lhs": "close", "op": ">", "rhs": 1}}]}"#, "positions[0].weight", "number"),
        (#"{"positions": [{"ticker": "A", "entry": {"lhs": "close", "rhs": 1}}]}"#, "positions[0].entry", "'op'"),
        (#"{"positions": [{"ticker": "A", "entry": {"any": [{"lhs": "close", "op": ">", "rhs": true}]}}]}"#, "positions[0].entry.any[0].rhs", ""),
        (#"not json"#, "", "not valid JSON: invalid value at line 1, column "),
        // Where the syntax breaks, not Foundation's "The given data was not valid JSON." (a tester's files).
        ("", "", "the file is empty: a strategy file is a JSON object"),
        (" \n\t", "", "the file is empty"),
        ("\u{0}\u{1}", "", "not valid JSON: invalid value at line 1, column 1"),
        ("{\"positions\": [\n  {\"ticker\": \"A\",, }]}", "", "not valid JSON: invalid value at line 2, column 18 (byte 33)"),
        ("{\"positions\": [", "", "not valid JSON"),
        // In a file, 0 is not "none" (the wire's proto3 default): leaving the key out is.
        (#"{"positions": [{"ticker": "A", "take_profit": 0, "entry": {"lhs": "close", "op": ">", "rhs": 1}}]}"#, "positions[0].take_profit", "take_profit must be a positive distance, got 0.0"),
        (#"{"positions": [{"ticker": "A", "entry": {"lhs": "close", "op": ">", "rhs": 1}}, {"ticker": "B", "stop_loss": 0, "entry": {"lhs": "close", "op": ">", "rhs": 1}}]}"#, "positions[1].stop_loss", "leave the key out for none"),
        (#"{"positions": [{"ticker": "A", "trailing_stop": -0.1, "entry": {"lhs": "close", "op": ">", "rhs": 1}}]}"#, "positions[0].trailing_stop", "got -0.1"),
        (#"{"positions": [{"ticker": "A", "max_bars": 0, "entry": {"lhs": "close", "op": ">", "rhs": 1}}]}"#, "positions[0].max_bars", "at least 1"),
        (#"{"positions": [{"ticker": "A", "stop_loss": 0.1, "stop_atr_period": 0, "entry": {"lhs": "close", "op": ">", "rhs": 1}}]}"#, "positions[0].stop_atr_period", "at least 1"),
        // Counts are whole numbers the wire's int32 holds (a tester's 2.5 was "not valid JSON",
        // with no field; 1e10 was taken).
        (#"{"positions": [{"ticker": "A", "max_bars": 2.5, "entry": {"lhs": "close", "op": ">", "rhs": 1}}]}"#, "positions[0].max_bars", "max_bars must be a whole number up to 2147483647, got 2.5"),
        (#"{"positions": [{"ticker": "A", "max_bars": 1e10, "entry": {"lhs": "close", "op": ">", "rhs": 1}}]}"#, "positions[0].max_bars", "got 10000000000.0"),
        (#"{"positions": [{"ticker": "A", "max_bars": 2147483648, "entry": {"lhs": "close", "op": ">", "rhs": 1}}]}"#, "positions[0].max_bars", "whole number up to 2147483647"),
        (#"{"positions": [{"ticker": "A", "stop_loss": 2, "stop_atr_period": 2.5, "entry": {"lhs": "close", "op": ">", "rhs": 1}}]}"#, "positions[0].stop_atr_period", "stop_atr_period must be a whole number up to 2147483647, got 2.5"),
        (#"{"positions": [{"ticker": "A", "max_bars": "5", "entry": {"lhs": "close", "op": ">", "rhs": 1}}]}"#, "positions[0].max_bars", "number"),
    ])
    func errors(json: String, field: String, fragment: String) {
        do {
            let file = try StrategyFile.decode(Data(json.utf8))
            Issue.record("decoded \(file)")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.field == field, "\(error)")
            #expect(fragment.isEmpty || error.message.contains(fragment), "\(error.message)")
        }
    }
}
