import Foundation

/// The CPU time a process has used, from /proc/PID/stat (Linux): user + system time, fields 14
/// and 15 (clock ticks, `sysconf(_SC_CLK_TCK)` per second). nil elsewhere or when the process is
/// gone.
package enum ProcessCPU {
    package static func seconds(pid: Int32) -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return nil }
        return parse(text, ticksPerSecond: Double(sysconf(Int32(_SC_CLK_TCK))))
    }

    /// "1234 (backtestd) S 1 ... utime stime ..." -> (utime + stime) / ticksPerSecond. The
    /// command name may hold spaces and parentheses, so fields are counted after the last ')'.
    package static func parse(_ stat: String, ticksPerSecond: Double) -> Double? {
        guard let close = stat.lastIndex(of: ")"), ticksPerSecond > 0 else { return nil }
        // After ") ": field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / ticksPerSecond
    }
}

/// Whether the server stops working once its clients stop: its CPU time in each of the two
/// seconds after the last client (normal and hostile) closed. Work that outlives its call (a
/// cancelled or abandoned backtest still computing) shows as CPU in the second second.
package struct IdleCheck: Sendable, Codable {
    /// Server CPU time in [0, 1) s after the clients stopped, ms.
    package var firstSecondMs: Double
    /// Server CPU time in [1, 2) s after the clients stopped, ms.
    package var secondSecondMs: Double

    /// What counts as idle: at most 5% of one core.
    package static let idleMsPerSecond = 50.0

    package var idleWithinOneSecond: Bool { secondSecondMs <= Self.idleMsPerSecond }

    /// Samples `cpuSeconds` now, after 1 s and after 2 s; nil when it cannot be read.
    package static func measure(cpuSeconds: () -> Double?) async -> IdleCheck? {
        guard let start = cpuSeconds() else { return nil }
        try? await Task.sleep(for: .seconds(1))
        guard let one = cpuSeconds() else { return nil }
        try? await Task.sleep(for: .seconds(1))
        guard let two = cpuSeconds() else { return nil }
        return IdleCheck(firstSecondMs: (one - start) * 1000, secondSecondMs: (two - one) * 1000)
    }
}
