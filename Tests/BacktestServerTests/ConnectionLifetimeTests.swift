import BacktestProtocol
import NIOCore
import Testing

@testable import BacktestServer

/// Issue 12: a closed connection leaves nothing behind. The handler kept its context, which
/// holds the handler, and its timers held it too: every closed connection stayed in memory with
/// its inbound buffer (up to a frame's size), hundreds of 2-4 MB buffers under hostile load.
@Suite("Connection lifetime")
struct ConnectionLifetimeTests {
    @Test func aClosedConnectionReleasesItsHandler() throws {
        weak var released: ServerConnectionHandler?
        try {
            let connection = try EmbeddedConnection()
            released = connection.handler
            // A frame in flight (its buffer held by the handler), then the peer goes away.
            var preface = ByteBuffer()
            Wire.writePreface(into: &preface)
            try connection.send(preface)
            try connection.send([0, 0, 0x10, 0])
            #expect(released != nil)
            _ = try connection.channel.close().wait()
        }()
        #expect(released == nil, "the handler outlived its connection")
    }

    @Test func aConnectionClosedByItsTimerReleasesItsHandler() throws {
        weak var released: ServerConnectionHandler?
        try {
            let connection = try EmbeddedConnection { $0.handshakeTimeout = .seconds(1) }
            released = connection.handler
            connection.advance(by: .seconds(2))
            #expect(!connection.isOpen)
        }()
        #expect(released == nil, "the handler outlived its connection")
    }
}
