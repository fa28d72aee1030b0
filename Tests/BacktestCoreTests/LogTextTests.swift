import BacktestCore
import Testing

/// `LogText`: client data in a log line cannot start a new line, hide behind controls or flood.
@Suite struct LogTextTests {
    @Test func aNewlineCannotForgeALogLine() {
        let name = "x\n2026-11-30T10:00:00+0000 info backtestd : call finished\r\n"
        let logged = LogText(name, limit: 200).description
        #expect(!logged.contains("\n") && !logged.contains("\r"))
        #expect(logged == "x\\n2026-11-30T10:00:00+0000 info backtestd : call finished\\r\\n")
    }

    @Test func controlsSeparatorsAndBidiOverridesAreEscaped() {
        #expect(LogText("AAPL\u{0}../x").description == "AAPL\\u{0}../x")
        #expect(LogText("a\tb\u{1B}[31mred\u{7F}\u{85}").description == "a\\tb\\u{1B}[31mred\\u{7F}\\u{85}")
        #expect(LogText("l\u{2028}p\u{2029}\u{202E}rtl\u{2066}").description == "l\\u{2028}p\\u{2029}\\u{202E}rtl\\u{2066}")
        // A backslash is doubled, so "\n" typed by the client is not a newline the server escaped.
        #expect(LogText(#"a\nb"#).description == #"a\\nb"#)
        // Ordinary text, accents and emoji pass unchanged.
        #expect(LogText("Momentum ü 📈 (SPY)").description == "Momentum ü 📈 (SPY)")
    }

    @Test func aLongValueKeepsAShortPrefixAndItsLength() {
        let huge = String(repeating: "A", count: 3_000_000)
        let logged = LogText(huge).description
        #expect(logged == String(repeating: "A", count: LogText.defaultLimit) + "…(3000000 bytes)")
        #expect(LogText("short", limit: 5).description == "short")
        #expect(LogText("shorter", limit: 5).description == "short…(7 bytes)")
        #expect(LogText("abc", limit: 0).description == "…(3 bytes)")
        // The limit counts characters of the input, not of the escapes.
        #expect(LogText("\n\n\n", limit: 2).description == "\\n\\n…(3 bytes)")
    }
}
