import BacktestCore
import BacktestProtocol
import NIOCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

@testable import BacktestServer

/// Issue 12, a fifth tester's slow reader: a client taking a grid's stream at 8-24 KB/s and
/// answering every PING it saw was closed "keepalive PING not answered and no output read",
/// because everything handed to the socket sat in the kernel (which reports the socket writable
/// again only once a third of its buffer is free: minutes at that pace) while the PING waited
/// behind it. The peer's TCP acknowledgements now count as output taken.
@Suite struct SlowReaderKeepaliveTests {
    typealias Machine = ConnectionStateMachine

    @Test func acknowledgedOutputKeepsAnUnansweredPingOpenUntilAcknowledgementsStop() throws {
        let t0 = OutputSchedulingTests.t0
        var machine = OutputSchedulingTests.open(streams: [1])
        let data = machine.handle(.dataReady(streamID: 1, payload: OutputSchedulingTests.data(800)), now: t0)
        // Everything handed over is written (into the kernel): nothing the channel holds moves.
        _ = machine.handle(.outputWritten(bytes: ConnectionStateMachineTests.writes(data).map(OutputSchedulingTests.size).reduce(0, +)), now: t0)
        _ = machine.handle(.outputAcknowledged(totalBytes: 5_000), now: t0 + .seconds(30))  // the baseline
        let ping = machine.handle(.timerFired(.keepalive), now: t0 + .seconds(30))
        _ = machine.handle(.outputWritten(bytes: ConnectionStateMachineTests.writes(ping).map(OutputSchedulingTests.size).reduce(0, +)), now: t0 + .seconds(30))
        // The peer's TCP acknowledged 240 KB more in the interval: it reads, slowly.
        _ = machine.handle(.outputAcknowledged(totalBytes: 245_000), now: t0 + .seconds(60))
        #expect(machine.handle(.timerFired(.keepalive), now: t0 + .seconds(60)) == [.schedule(.keepalive, at: t0 + .seconds(90))])
        // Acknowledgements that do not grow, or grow by less than the PING, are no reading.
        _ = machine.handle(.outputAcknowledged(totalBytes: 245_010), now: t0 + .seconds(90))
        let stopped = machine.handle(.timerFired(.keepalive), now: t0 + .seconds(90))
        #expect(try ConnectionStateMachineTests.goAway(stopped)?.status.code == .unavailable)
        #expect(stopped.last == .close)
    }

    #if os(Linux)
    /// `LinuxTCPInfo` reads the kernel's `tcpi_bytes_acked`: after 100,000 bytes went over a
    /// loopback connection and were read, it says at least that many were acknowledged.
    @Test func theKernelsAcknowledgedByteCountIsReadAtItsOffset() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try #require(withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } } == 0)
        try #require(listen(listener, 1) == 0)
        try #require(withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } } == 0)
        let sender = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(sender) }
        try #require(withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(sender, $0, length) } } == 0)
        let receiver = accept(listener, nil, nil)
        defer { close(receiver) }
        let bytes = [UInt8](repeating: 7, count: 100_000)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(sender, $0.baseAddress, $0.count, 0) }
            try #require(n > 0)
            sent += n
            var sink = [UInt8](repeating: 0, count: 65_536)
            _ = recv(receiver, &sink, sink.count, Int32(MSG_DONTWAIT))
        }
        var received = 0
        var sink = [UInt8](repeating: 0, count: 65_536)
        var info = LinuxTCPInfo()
        for _ in 0..<200 {
            let n = recv(receiver, &sink, sink.count, Int32(MSG_DONTWAIT))
            if n > 0 { received += n }
            var size = socklen_t(MemoryLayout<LinuxTCPInfo>.size)
            try #require(getsockopt(sender, Int32(IPPROTO_TCP), TCP_INFO, &info, &size) == 0)
            if info.bytesAcknowledged >= 100_000 { break }
            usleep(5_000)
        }
        #expect(info.bytesAcknowledged >= 100_000)
        #expect(info.bytesAcknowledged < 100_000 + 1_000, "the word read is the acknowledged byte count, not another field")
    }
    #endif
}
