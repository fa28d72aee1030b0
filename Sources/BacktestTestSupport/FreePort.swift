#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Free TCP ports for children that must be told their port up front (redis-server, backtestd):
/// the one free-port helper of the tests and benchmarks. Servers of our own bind port 0 instead.
package enum FreePort {
    /// A port the kernel just handed out on 127.0.0.1 (bind to 0, read it back, close). Another
    /// process could take it before the caller's child binds it; the children's start-up checks
    /// report that as a failure to start.
    /// - Throws: `FreePortError` when no socket can be bound.
    package static func loopback() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw FreePortError(description: "socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw FreePortError(description: "cannot bind a loopback port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// No loopback port could be had.
package struct FreePortError: Error, CustomStringConvertible {
    package var description: String
}
