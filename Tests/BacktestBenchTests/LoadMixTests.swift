import BacktestBench
import Testing

@Suite("Load mix and think time parsing")
struct LoadMixTests {
    @Test func parsesWeightsCaseInsensitively() throws {
        let mix = try LoadMix(parsing: "Single:80, batch:20")
        #expect(mix.weights == [.single: 80, .batch: 20])
        #expect(mix.total == 100)
        #expect(mix.description == "single:80,batch:20")
    }

    @Test func rollsMapOntoWeights() throws {
        let mix = try LoadMix(parsing: "single:3,batch:1")
        #expect((0..<3).map(mix.kind(forRoll:)) == [.single, .single, .single])
        #expect(mix.kind(forRoll: 3) == .batch)
        let onlyBatch = try LoadMix(parsing: "batch:5")
        #expect((0..<5).allSatisfy { onlyBatch.kind(forRoll: $0) == .batch })
    }

    @Test(arguments: ["", "single", "single:80,batch", "stream:10", "single:-1", "single:1.5", "single:0,batch:0", "single:1,single:2"])
    func rejectsMalformedMixes(_ text: String) {
        #expect(throws: MixError.self) { try LoadMix(parsing: text) }
    }

    @Test func errorNamesTheUnknownKind() {
        #expect {
            try LoadMix(parsing: "single:80,stream:20")
        } throws: { error in
            "\(error)".contains("stream")
        }
    }

    @Test func thinkTimeRangesAndFixedValues() throws {
        #expect(try parseThinkTime("50..200") == 50...200)
        #expect(try parseThinkTime("100") == 100...100)
        for bad in ["200..50", "a..b", "-5", "1..2..3", ""] {
            #expect(throws: MixError.self) { try parseThinkTime(bad) }
        }
    }
}
