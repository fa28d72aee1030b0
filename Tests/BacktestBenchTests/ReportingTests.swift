import BacktestBench
import BacktestReporting
import Foundation
import Histogram
import Testing

@Suite("Percentiles, tables and /proc parsing")
struct ReportingTests {
    /// 1..1000 ms recorded once each: the k-th percentile is k * 10 ms (within HDR's 0.1 %).
    @Test func percentilesComeFromTheHistogram() {
        var histogram = LatencySummary.makeHistogram()
        for millis in 1...1000 { histogram.record(Duration.milliseconds(millis)) }
        let summary = LatencySummary(histogram)
        #expect(summary.count == 1000)
        #expect(abs(summary.p50Ms - 500) <= 0.5)
        #expect(abs(summary.p90Ms - 900) <= 0.9)
        #expect(abs(summary.p99Ms - 990) <= 1)
        #expect(abs(summary.maxMs - 1000) <= 1)
        #expect(abs(summary.meanMs - 500.5) <= 0.6)
    }

    @Test func emptyHistogramReportsZeros() {
        let summary = LatencySummary(LatencySummary.makeHistogram())
        #expect(summary.count == 0 && summary.p99Ms == 0 && summary.maxMs == 0)
    }

    @Test func talliesMergeHistogramsAndCounts() {
        var a = LoadTally()
        a.record(.single, .milliseconds(2))
        a.errors["UNAVAILABLE"] = 1
        var b = LoadTally()
        b.record(.single, .milliseconds(4))
        b.record(.batch, .milliseconds(10))
        b.errors["UNAVAILABLE"] = 2
        b.retried["UNAVAILABLE"] = 5
        b.mismatches = ["user 3: wrong"]
        a.merge(b)
        #expect(a.completed == 3)
        #expect(a.latency[.single]?.totalCount == 2)
        #expect(a.allLatencies.totalCount == 3)
        #expect(a.errors == ["UNAVAILABLE": 3])
        #expect(a.retried == ["UNAVAILABLE": 5])
        #expect(a.mismatches == ["user 3: wrong"])
    }

    @Test func tableColumnsLineUp() {
        var table = TextTable(headers: ["Metric", "Value"])
        table.append(["single warm p50", "3.1 ms"])
        table.append(["a|b"])
        let lines = table.rendered().split(separator: "\n").map(String.init)
        #expect(lines.count == 4)
        #expect(Set(lines.map(\.count)).count == 1, "every line has the same width")
        #expect(lines[0] == "| Metric          | Value  |")
        #expect(lines[1] == "|-----------------|--------|")
        #expect(lines[3].hasPrefix("| a\\|b "))
    }

    @Test func numbersFormatForPeople() {
        #expect(Format.ratio(1.26) == "1.3x")
        #expect(Format.ratio(349.4) == "349x")
        #expect(Format.ratio(.infinity) == "-")
        #expect(Format.milliseconds(0.587) == "0.59 ms")
        #expect(Format.milliseconds(25.34) == "25.3 ms")
        #expect(Format.milliseconds(4010) == "4.01 s")
        #expect(Format.percent(1, decimals: 1) == "100.0%")
    }

    @Test func reportTargetsFailWhenExceeded() {
        var tally = LoadTally()
        for _ in 0..<99 { tally.record(.single, .milliseconds(5)) }
        tally.record(.single, .milliseconds(900))
        tally.record(.single, .milliseconds(900))
        tally.errors["DEADLINE_EXCEEDED"] = 1
        let report = LoadTestReport(tally: tally, elapsed: .seconds(10), options: LoadTest.Options(), chaos: false,
                                    machine: "test", command: "test", peakRSS: 600 * 1_048_576, chaosEvents: [])
        #expect(report.requestsPerSecond == 10.1)
        #expect(!report.passed)
        #expect(report.targets.filter { !$0.pass }.map(\.name).sorted() ==
                ["p99 of single backtests <= 50 ms", "server peak RSS <= 500 MB", "zero errors surfaced to users"])
        #expect(report.rendered().contains("DEADLINE_EXCEEDED 1"))
    }

    @Test func procStatusFieldsParse() {
        let status = "Name:\tbacktestd\nVmPeak:\t  812344 kB\nVmHWM:\t   75160 kB\nVmRSS:\t   70000 kB\n"
        #expect(ProcStatus.parse("VmHWM", in: status) == 75160)
        #expect(ProcStatus.parse("VmRSS", in: status) == 70000)
        #expect(ProcStatus.parse("VmSwap", in: status) == nil)
    }

    /// Our own process has a status file with a high-water mark above zero.
    @Test func ownPeakRSSIsReadable() throws {
        let peak = try #require(ProcStatus.kilobytes("VmHWM", pid: getpid()))
        #expect(peak > 0)
    }

    @Test func engineBenchJSONGivesPerCoreFigures() throws {
        let json = #"{"parallelism": 2, "runs": 10, "single_bars_per_second": 1000000, "sweep_bars_per_second": 8000000}"#
        let figures = try EngineFigures.parse(Data(json.utf8))
        #expect(figures["single_bars_per_second"] == 1_000_000)
        let cores = Double(min(2, ProcessInfo.processInfo.activeProcessorCount))
        #expect(figures["sweep_bars_per_second_per_core"] == 8_000_000 / cores)
        #expect(throws: BenchError.self) { try EngineFigures.parse(Data("[1]".utf8)) }
    }
}
