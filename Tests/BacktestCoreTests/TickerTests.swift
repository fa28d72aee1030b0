import BacktestCore
import Testing

@Suite("The ticker syntax")
struct TickerTests {
    @Test("tickers", arguments: ["A", "AAPL", "SPY", "BRK.B", "BF.B", "GOOGL", "X2", "ABCDEFGHIJ", "ABCDEFGH.I"])
    func valid(text: String) throws {
        #expect(try Ticker(validating: text, field: "t").symbol == text)
    }

    @Test(
        "not tickers",
        arguments: [
            "", "aapl", "Aapl", "BRK/B", "BRK-B", "BTC/USD", "A B", " AAPL", "AAPL\n", "AAPL\u{0}../../x", "../x", "..", ".A",
            "A.", "A..B", "A.B.C", "1A", "ÄPPLE", "AAPL\u{7F}", "A:B", "A,B", "A&B", "A%2F", "ABCDEFGHIJK",
        ])
    func invalid(text: String) {
        #expect(Ticker(text) == nil)
        let error = #expect(throws: BacktestError.self) { try Ticker(validating: text, field: "strategy.positions[0].ticker") }
        #expect(error?.code == .invalidArgument)
        #expect(error?.field == "strategy.positions[0].ticker")
        #expect(error?.message.contains(Ticker.syntax) == true, "the message states the syntax")
    }

    @Test("the message shows a short, escaped prefix of the input only")
    func messageEscapesAndTruncates() throws {
        let nul = #expect(throws: BacktestError.self) { try Ticker(validating: "AAPL\u{0}../../x", field: "f") }
        #expect(nul?.message.hasPrefix(#"'AAPL\0../../x' is not a ticker symbol"#) == true, "\(nul?.message ?? "")")
        #expect(nul?.message.unicodeScalars.contains { $0.value < 0x20 } == false, "no raw control characters")
        let long = String(repeating: "X", count: 5000)
        let error = #expect(throws: BacktestError.self) { try Ticker(validating: long, field: "f") }
        #expect(error?.message.hasPrefix("'XXXXXXXXXXXXXXXX'... is not a ticker symbol") == true)
        #expect((error?.message.count ?? .max) < 300)
        let empty = #expect(throws: BacktestError.self) { try Ticker(validating: "", field: "f") }
        #expect(empty?.message.hasPrefix("an empty string is not a ticker symbol") == true)
    }

    @Test("lower case is rejected with the upper-case form suggested")
    func lowerCase() {
        let error = #expect(throws: BacktestError.self) { try Ticker(validating: "brk.b", field: "f") }
        #expect(error?.message.hasSuffix("did you mean BRK.B?") == true)
    }
}
