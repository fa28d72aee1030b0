import BacktestCore
import BacktestModel
import BacktestProtocol
import NIOCore
import Testing

/// `CallRequest.peekTimeoutMs`: the deadline of a large request read before it is decoded.
struct PeekTimeoutTests {
    static let strategy = Strategy(name: "s", positions: [
        Position(ticker: "AAPL", weight: 1, entry: .compare(lhs: .series(SeriesRef(source: .field(.close))), op: .greater, rhs: .number(1))),
    ])
    static let settings = BacktestSettings(start: TradingDate(iso: "2019-01-02")!, end: TradingDate(iso: "2019-12-31")!)

    @Test(arguments: [UInt32(0), 1, 300, 600_000, UInt32.max])
    func theHeadersTimeoutIsReadFromTheBytes(timeout: UInt32) {
        let request = CallRequest(header: RequestHeader(timeoutMs: timeout, requestID: "id", client: "c"),
                                  method: .runBacktest(BacktestRequest(strategy: Self.strategy, settings: Self.settings)))
        #expect(CallRequest.peekTimeoutMs(request.encoded()) == timeout)
    }

    @Test func noHeaderMeansZeroAndBrokenBytesMeanNil() {
        #expect(CallRequest.peekTimeoutMs(CallRequest(method: .serverInfo).encoded()) == 0)
        #expect(CallRequest.peekTimeoutMs(ByteBuffer()) == 0)
        // A header whose length runs past the end, and a bad wire type.
        #expect(CallRequest.peekTimeoutMs(ByteBuffer(bytes: [0x0A, 0x05, 0x08])) == nil)
        #expect(CallRequest.peekTimeoutMs(ByteBuffer(bytes: [0x0F, 0x00])) == nil)
    }
}
