import BacktestCore
import BacktestModel
import Foundation
import Testing

/// A key written twice in one object of a strategy or variants file is an error naming it (issue
/// 12, failure 7): JSON decoders would keep one of the values without a word.
@Suite struct DuplicateKeysTests {
    func first(_ json: String) -> (key: String, path: String)? {
        JSONDuplicateKeys.first(in: Data(json.utf8))
    }

    @Test func findsTheFirstDuplicateWithItsPath() {
        #expect(first(#"{"a": 1, "b": 2, "a": 3}"#)! == ("a", ""))
        #expect(first(#"{"p": [{"x": 1}, {"y": {"z": 1, "z": 2}}]}"#)! == ("z", "p[1].y"))
        #expect(first(#"[{"k": 1}, {"k": 2, "k": 3}]"#)! == ("k", "[1]"))
    }

    @Test func theSameKeyInDifferentObjectsOrAsAValueIsFine() {
        #expect(first(#"{"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}], "c": "a"}"#) == nil)
        #expect(first(#"{"s": "quote \" and brace } inside", "t": "{\"s\": 1, \"s\": 2}"}"#) == nil)
        #expect(first(#"{"n": -1.5e3, "t": true, "f": false, "z": null, "e": [], "o": {}}"#) == nil)
    }

    /// The scanner runs before the decoder: it bounds nesting itself, at the decoder's 512 (a
    /// tester's 80,000 nested `[` overflowed the stack: the CLI and the web API's server died).
    @Test func deepNestingIsRefusedWithoutRecursingIntoIt() throws {
        for depth in [513, 80_000, 1_000_000] {
            let data = Data(String(repeating: "[", count: depth).utf8)
            let error = try #require(throws: BacktestError.self) { try JSONDuplicateKeys.reject(in: data, document: "the strategy file") }
            #expect(error.message == "the strategy file nests arrays and objects deeper than 512 levels (at byte 512)")
            let file = try #require(throws: BacktestError.self) { try StrategyFile.decode(data) }
            #expect(file.message.contains("deeper than 512 levels"))
        }
        // Objects count too; 512 levels pass the scanner (the decoder judges the rest).
        let objects = Data((String(repeating: #"{"a":"#, count: 600) + "1" + String(repeating: "}", count: 600)).utf8)
        #expect(throws: BacktestError.self) { try JSONDuplicateKeys.reject(in: objects, document: "d") }
        let fine = Data((String(repeating: "[", count: 512) + String(repeating: "]", count: 512)).utf8)
        try JSONDuplicateKeys.reject(in: fine, document: "d")
        // A duplicate before the depth is still found.
        #expect(first(#"{"a": 1, "a": 2, "b": "# + String(repeating: "[", count: 600))! == ("a", ""))
    }

    @Test func keysAreComparedAfterTheirEscapes() {
        #expect(first(#"{"op": 1, "\u006fp": 2}"#)! == ("op", ""))
        #expect(first(#"{"a\"b": 1, "a\u0022b": 2}"#)! == ("a\"b", ""))
    }

    @Test func aStrategyFileWithADuplicateIsRejectedNamingIt() {
        let json = """
            {"name": "dup", "positions": [{"ticker": "AAPL", "weight": 1.0, "weight": 0.5,
              "entry": {"lhs": "close", "op": ">", "rhs": "sma:20"}}]}
            """
        let error = #expect(throws: BacktestError.self) { try StrategyFile.decode(Data(json.utf8)) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.field == "positions[0].weight")
        #expect(error?.message.contains("'weight' twice in positions[0]") == true, "\(String(describing: error))")
    }

    @Test func aVariantsFileWithADuplicateIsRejected() {
        let error = #expect(throws: BacktestError.self) {
            try VariantExpansion.overrideSets(Data(#"[{"commission_bps": 1, "commission_bps": 2}]"#.utf8))
        }
        #expect(error?.field == "[0].commission_bps")
    }

    /// A variants file that is not JSON says where, as a strategy file does, never Foundation's
    /// "DecodingError.dataCorrupted: ..." dump.
    @Test func aVariantsFileThatIsNotAnArrayOfObjectsSaysWhere() throws {
        for (text, message) in [
            ("", "variants file: the file is empty: a variants file is a JSON array of objects"),
            ("[{\"commission_bps\": 1},, ]", "variants file: not valid JSON: invalid value at line 1, column 24 (byte 23)"),
            (#"{"a": 1}"#, "variants file: must be a JSON array of objects"),
        ] {
            let error = try #require(throws: BacktestError.self) { try VariantExpansion.overrideSets(Data(text.utf8)) }
            #expect(error.message == message, "\(error.message)")
        }
    }
}
