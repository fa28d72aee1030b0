import BacktestCore
import Testing

@Suite("Wall-clock instants")
struct WallClockTests {
    @Test("Unix seconds round down, also before the epoch")
    func unixSeconds() {
        #expect(UnixInstant(unixSeconds: 1_700_000_000).advanced(by: .milliseconds(999)).unixSeconds == 1_700_000_000)
        #expect(UnixInstant(sinceEpoch: .milliseconds(-1)).unixSeconds == -1)
        #expect(UnixInstant(unixSeconds: 10).duration(to: UnixInstant(unixSeconds: 12)) == .seconds(2))
    }

    @Test("the system clock reads the calendar time")
    func systemClock() {
        // After 2024-01-01 and before 2100: a sanity bound, not a timing.
        #expect((1_704_067_200..<4_102_444_800).contains(SystemWallClock().now.unixSeconds))
    }
}
