import BacktestCore
import BacktestModel
import BacktestReporting
import Foundation
import Testing

@Suite("--vary and --variants expansion")
struct VariantExpansionTests {
    let base: Data
    let baseStrategy: Strategy

    init() throws {
        base = try Fixtures.exampleFile("sma-crossover.json")
        baseStrategy = try StrategyFile.decode(base).strategy
    }

    @Test("one path: one variant per value, everything else as in the file")
    func singlePath() throws {
        let variants = try VariantExpansion.expand(base: base, vary: [VaryOption(parsing: "positions[0].weight=0.25,0.5,1")])
        #expect(variants.map(\.strategy.positions[0].weight) == [0.25, 0.5, 1])
        #expect(variants.map(\.index) == [0, 1, 2])
        #expect(variants.map(\.label) == ["positions[0].weight=0.25", "positions[0].weight=0.5", "positions[0].weight=1"])
        for variant in variants {
            var expected = baseStrategy
            expected.positions[0].weight = variant.strategy.positions[0].weight
            #expect(variant.strategy == expected)
        }
    }

    /// The grid's rule for the CLI's --vary: a new user's `positions[*].weight` with
    /// `positions[0].weight` ran, the later option silently winning for position 0.
    @Test("--vary options that set one place are refused, naming the later one", arguments: [
        ("positions[*].weight=0.2,0.3", "positions[0].weight=0.4"),
        ("positions[0].weight=0.2", "positions[*].weight=0.4"),
        ("positions[0].weight=0.2", "positions[0].weight=0.4"),
        ("positions[0].entry={\"lhs\":\"close\",\"op\":\">\",\"rhs\":1}", "positions[0].entry.rhs=2"),
    ])
    func overlappingVaryOptions(first: String, second: String) throws {
        let error = #expect(throws: BacktestError.self) {
            try VariantExpansion.expand(base: base, vary: [VaryOption(parsing: first), VaryOption(parsing: second)])
        }
        #expect(error?.field == second.split(separator: "=").first.map(String.init))
        #expect(error?.message.contains("overlaps --vary") == true, "\(error?.message ?? "")")
        // Sibling places are not overlaps.
        _ = try VariantExpansion.expand(base: base, vary: [VaryOption(parsing: "positions[0].weight=0.5"), VaryOption(parsing: "commission_bps=1,2")])
    }

    @Test("several --vary form the cartesian product, the first changing slowest")
    func cartesianProduct() throws {
        let variants = try VariantExpansion.expand(base: base, vary: [
            VaryOption(parsing: "positions[0].weight=0.25,0.5,0.75,1"),
            VaryOption(parsing: "commission_bps=1,5"),
        ])
        #expect(variants.count == 8)
        let pairs = variants.map { [$0.strategy.positions[0].weight, $0.strategy.commissionBps] }
        #expect(Set(pairs).count == 8)
        #expect(pairs[0] == [0.25, 1] && pairs[1] == [0.25, 5] && pairs[2] == [0.5, 1] && pairs[7] == [1, 5])
        #expect(variants[1].label == "positions[0].weight=0.25, commission_bps=5")
    }

    @Test("--vary reaches the stop, target, direction and sizing keys of a position")
    func stopsAndSizing() throws {
        let variants = try VariantExpansion.expand(base: base, vary: [
            VaryOption(parsing: "positions[0].stop_loss=0.02,0.05"),
            VaryOption(parsing: "positions[*].take_profit=0.1"),
            VaryOption(parsing: "positions[0].direction=long,short"),
        ])
        #expect(variants.count == 4)
        let last = variants[3].strategy.positions[0]
        #expect(last.exits.stopLoss == 0.05 && last.exits.takeProfit == 0.1 && last.direction == .short)
        #expect(variants[0].strategy.positions[0].exits.stopLoss == 0.02 && variants[0].strategy.positions[0].direction == .long)
        #expect(throws: BacktestError.self) {
            try VariantExpansion.expand(base: base, vary: [VaryOption(parsing: "positions[0].sizing=lots")])
        }
    }

    @Test("plain strings need no quotes; JSON values with commas are one value")
    func stringAndJSONValues() throws {
        let text = try #require(String(data: base, encoding: .utf8))
        let expected = try StrategyFile.decode(Data(text.replacingOccurrences(of: "sma:200", with: "sma:100").utf8)).strategy
        let variants = try VariantExpansion.expand(base: base, vary: [VaryOption(parsing: "positions[0].entry.rhs=sma:100,sma:200")])
        #expect(variants[0].strategy == expected)
        #expect(variants[1].strategy == baseStrategy)

        let exits = try VaryOption(parsing: #"positions[0].exit={"lhs":"rsi:14","op":">","rhs":70},{"lhs":"rsi:14","op":">","rhs":80}"#)
        #expect(exits.values.count == 2)
        let withExits = try VariantExpansion.expand(base: base, vary: [exits])
        #expect(withExits.allSatisfy { $0.strategy.positions[0].exit != nil })
        #expect(withExits[0].strategy != withExits[1].strategy)
    }

    @Test("positions[*] sets every position")
    func everyIndex() throws {
        let file = try Fixtures.exampleFile("rsi-with-regime-filter.json")
        let variants = try VariantExpansion.expand(base: file, vary: [VaryOption(parsing: "positions[*].weight=0.1,0.2")])
        #expect(variants.map { $0.strategy.positions.map(\.weight) } == [[0.1, 0.1, 0.1], [0.2, 0.2, 0.2]])
    }

    @Test("a path that is not in the strategy is an error naming the path", arguments: [
        ("positions[3].weight=0.5", "positions[3].weight", "1 element"),
        ("positons[0].weight=0.5", "positons[0].weight", "positons"),
        ("positions[0].entry.lhs.x=1", "positions[0].entry.lhs.x", "not an object"),
        ("name[0]=x", "name[0]", "not an array"),
    ])
    func badPath(argument: String, path: String, detail: String) throws {
        let error = #expect(throws: BacktestError.self) {
            try VariantExpansion.expand(base: base, vary: [VaryOption(parsing: argument)])
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.field == path)
        #expect(error?.message.contains(path) == true)
        #expect(error?.message.contains(detail) == true, "\(error?.message ?? "")")
    }

    @Test("malformed paths and values are rejected before anything runs", arguments: [
        "positions[x].weight=1", "positions[0]weight=1", ".name=x", "positions[0].weight", "positions[0].weight=1,,2",
        "positions[0.weight=1",
    ])
    func malformed(argument: String) {
        #expect(throws: BacktestError.self) { try VaryOption(parsing: argument) }
    }

    @Test("a new key the strategy format does not know fails with the decoder's field path")
    func unknownKey() {
        let error = #expect(throws: BacktestError.self) {
            try VariantExpansion.expand(base: base, vary: [VaryOption(parsing: "comission_bps=1")])
        }
        #expect(error?.message.contains("comission_bps") == true)
        #expect(error?.message.contains("variant comission_bps=1") == true)
    }

    @Test("settings belong to the batch, not to a variant")
    func settingsRejected() {
        let error = #expect(throws: BacktestError.self) {
            try VariantExpansion.expand(base: base, vary: [VaryOption(parsing: "start=2019-01-02,2020-01-02")])
        }
        #expect(error?.field == "start")
    }

    @Test("a variants file of overrides, crossed with --vary")
    func variantsFile() throws {
        let file = Data(#"[{"positions[0].weight": 0.5}, {"name": "cheap", "commission_bps": 0}]"#.utf8)
        let variants = try VariantExpansion.expand(base: base, vary: [VaryOption(parsing: "slippage_bps=0,10")], variantsFile: file)
        #expect(variants.count == 4)
        #expect(variants[0].strategy.positions[0].weight == 0.5 && variants[0].strategy.slippageBps == 0)
        #expect(variants[1].strategy.slippageBps == 10 && variants[1].strategy.name == baseStrategy.name)
        #expect(variants[2].strategy.name == "cheap" && variants[2].strategy.commissionBps == 0)
        #expect(variants[2].strategy.positions == baseStrategy.positions)
        #expect(variants.map(\.label) == [
            "positions[0].weight=0.5, slippage_bps=0", "positions[0].weight=0.5, slippage_bps=10",
            "cheap, slippage_bps=0", "cheap, slippage_bps=10",
        ])
    }

    @Test("a variants file entry that is not an object is an error naming the entry")
    func variantsFileNotObjects() {
        let error = #expect(throws: BacktestError.self) {
            try VariantExpansion.expand(base: base, vary: [], variantsFile: Data(#"[{"commission_bps": 1}, 3]"#.utf8))
        }
        #expect(error?.field == "[1]")
    }

    @Test("an absurd product is refused")
    func tooMany() throws {
        let values = (1...200).map(String.init).joined(separator: ",")
        #expect(throws: BacktestError.self) {
            try VariantExpansion.expand(base: base, vary: [
                VaryOption(parsing: "commission_bps=\(values)"), VaryOption(parsing: "slippage_bps=\(values)"),
            ])
        }
    }
}
