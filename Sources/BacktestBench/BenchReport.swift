import BacktestReporting
import Foundation

/// What `backtest-bench bench` measured: the success-metrics table of the plan, the years x tickers
/// grid, the engine-only figures and the checks behind the "checked" cells. Codable for
/// `--json`; `rendered()` for people (Markdown tables, pasteable into the README).
package struct BenchReport: Sendable, Codable {
    package struct Row: Sendable, Codable {
        package var metric: String
        package var oldSystem: String
        package var planTarget: String
        package var ourTarget: String
        package var measured: String
        /// The reference path (old engine, no cache, one symbol per call, sequential) on this machine.
        package var referencePath: String
        package var speedup: String
        package var pass: Bool?
    }

    package struct GridCell: Sendable, Codable {
        package var years: Int
        package var tickers: Int
        package var warmP50Ms: Double
        package var coldMedianMs: Double
        package var apiCallsCold: Int
        package var referenceMedianMs: Double
    }

    package var machine: String
    package var command: String
    package var date: String
    package var alpacaLatencyMs: Int
    package var rows: [Row] = []
    package var grid: [GridCell] = []
    /// engine-bench --json, when it could be run.
    package var engine: [String: Double]?
    package var engineNote: String?
    package var checks: [String] = []
    package var failedChecks: [String] = []

    package init(machine: String, command: String, date: String, alpacaLatencyMs: Int) {
        self.machine = machine
        self.command = command
        self.date = date
        self.alpacaLatencyMs = alpacaLatencyMs
    }

    package mutating func check(_ ok: Bool, _ text: String) {
        if ok { checks.append(text) } else { failedChecks.append(text) }
    }

    package func rendered() -> String {
        var out = ["backtest-bench bench on \(machine), \(date)", "command: \(command)",
                   "fake Alpaca latency \(alpacaLatencyMs) ms per request; everything on 127.0.0.1", ""]
        var table = TextTable(headers: ["Metric", "Old system", "Plan target", "Our target", "Measured", "Reference path", "Speedup", "Pass"])
        for row in rows {
            table.append([row.metric, row.oldSystem, row.planTarget, row.ourTarget, row.measured, row.referencePath, row.speedup,
                          row.pass.map { $0 ? "yes" : "NO" } ?? "-"])
        }
        out.append(table.rendered())
        if !grid.isEmpty {
            out.append("")
            out.append("Single backtest by period and portfolio size (p50 warm, median cold, over TCP):")
            var gridTable = TextTable(headers: ["Years", "Tickers", "Warm p50", "Cold", "API calls cold", "Reference path", "Speedup warm / cold"])
            for cell in grid {
                gridTable.append(["\(cell.years)", "\(cell.tickers)", Format.milliseconds(cell.warmP50Ms), Format.milliseconds(cell.coldMedianMs),
                                  "\(cell.apiCallsCold)", Format.milliseconds(cell.referenceMedianMs),
                                  "\(Format.ratio(cell.referenceMedianMs / cell.warmP50Ms)) / \(Format.ratio(cell.referenceMedianMs / cell.coldMedianMs))"])
            }
            out.append(gridTable.rendered())
        }
        out.append("")
        if let engine {
            out.append("Engine only (engine-bench, data in memory):")
            var engineTable = TextTable(headers: ["Figure", "Value"])
            for (key, label) in Self.engineFigures {
                if let value = engine[key] { engineTable.append([label, value >= 1000 ? String(format: "%.0f", value) : String(format: "%.3f", value)]) }
            }
            out.append(engineTable.rendered())
        } else if let engineNote {
            out.append("Engine only: \(engineNote)")
        }
        out.append("")
        out.append("checks passed:")
        out += checks.map { "  ok  \($0)" }
        if !failedChecks.isEmpty {
            out.append("checks FAILED:")
            out += failedChecks.map { "  !!  \($0)" }
        }
        return out.joined(separator: "\n")
    }

    static let engineFigures: [(String, String)] = [
        ("single_warm_median_ms", "10 tickers x 3 indicators, 10 years, indicators precomputed: median ms"),
        ("single_cold_median_ms", "same, computing the indicators: median ms"),
        ("single_bars_per_second", "bars simulated per second on one core"),
        ("sweep_wall_ms", "10,000-variant SMA sweep, 10 years: wall ms"),
        ("sweep_variants_per_second", "sweep variants per second"),
        ("sweep_bars_per_second_per_core", "sweep bars per second per core"),
    ]

    package func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}

/// "2 cores, AMD EPYC ..." from /proc/cpuinfo and the processor count.
package func machineDescription() -> String {
    let cores = ProcessInfo.processInfo.activeProcessorCount
    let model = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
        .split(separator: "\n").first { $0.hasPrefix("model name") }?
        .split(separator: ":", maxSplits: 1).last?.trimmingCharacters(in: .whitespaces)
    let memory = ProcStatus.memTotalKilobytes().map { String(format: ", %.1f GB RAM", Double($0) / 1_048_576) } ?? ""
    return "\(cores) cores, \(model ?? "unknown CPU")\(memory)"
}

extension ProcStatus {
    static func memTotalKilobytes() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return nil }
        return parse("MemTotal", in: text)
    }
}
