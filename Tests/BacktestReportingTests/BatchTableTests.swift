import BacktestCore
import BacktestModel
import BacktestReporting
import Foundation
import Testing

@Suite("Batch tables: partial, final, CSV")
struct BatchTableTests {
    static let weights = [0.25, 0.5, 0.75, 1.0, 0.1, 0.9, 0.6, 0.3]
    /// Real engine results for the eight weights, in request order.
    static let results = Result { try weights.map { try Fixtures.smaCrossover(weight: $0) } }

    static func labels() -> [String] { weights.map { "positions[0].weight=\($0)" } }

    static func update(_ indices: [Int], state: BatchState = .partial, completed: Int, failing: Set<Int> = []) throws -> ProgressUpdate {
        let results = try Self.results.get()
        return ProgressUpdate(batchID: "b-1", completed: completed, total: weights.count, state: state, results: indices.map { index in
            failing.contains(index)
                ? VariantResult(index: index, outcome: .failure(.invalidArgument("weight must be in (0, 1]", field: "strategy.positions[0].weight")))
                : VariantResult(index: index, outcome: .success(results[index]))
        })
    }

    @Test("partial: header counts, unfinished rows say Running..., rows stay in request order, no final table")
    func partial() throws {
        var table = BatchTable(labels: Self.labels())
        #expect(table.header == "Partial Results (0/8 complete)")
        table.apply(try Self.update([5, 2], completed: 2))
        table.apply(try Self.update([7], completed: 3, failing: [7]))
        #expect(table.header == "Partial Results (3/8 complete)")
        let lines = table.render()
        #expect(lines[0] == "Partial Results (3/8 complete)")
        let rows = Array(lines.dropFirst(3))
        #expect(rows.count == 8)
        #expect(rows.filter { $0.hasSuffix("Running...") }.count == 5)
        let order = rows.compactMap { Int($0.split(separator: " ").first ?? "") }
        #expect(order == Array(0..<8))
        #expect(rows[7].contains("error: INVALID_ARGUMENT: weight must be in (0, 1]"))
        #expect(!rows[5].contains("Running...") && !rows[2].contains("Running..."))
        #expect(!lines.joined().contains("▼"))
        #expect(table.finalized(sortBy: .sharpe) == nil)
    }

    @Test("a final update that leaves rows unfinished does not make the table final")
    func finalWithMissingRows() throws {
        var table = BatchTable(labels: Self.labels())
        table.apply(try Self.update([0, 1, 2], state: .final, completed: 8))
        #expect(!table.isFinal)
        #expect(table.finalized(sortBy: .sharpe) == nil)
    }

    @Test("a batch that stops early never yields a final table")
    func interrupted() throws {
        var table = BatchTable(labels: Self.labels())
        table.apply(try Self.update([0, 1], completed: 2))
        table.interrupt(BacktestError(.unavailable, "connection closed before the call finished"))
        #expect(table.header == "Cancelled Results (2/8 complete)")
        #expect(table.finalized(sortBy: .sharpe) == nil)
        #expect(table.render()[1].contains("connection closed"))
        // Its unfinished rows are not running any more.
        let rendered = table.render()
        #expect(rendered.filter { $0.hasSuffix("  not run") }.count == 6, "\(rendered)")
        #expect(!rendered.contains { $0.contains("Running...") })
    }

    /// Best first: the largest Sharpe/return, the shallowest (largest, as it is negative)
    /// drawdown, the smallest volatility.
    @Test("final: sorted best first by the chosen metric, errors last", arguments: [
        (BatchMetric.sharpe, true), (.totalReturn, true), (.maxDrawdown, true), (.volatility, false),
    ])
    func final(metric: BatchMetric, descending: Bool) throws {
        var table = BatchTable(labels: Self.labels())
        table.apply(try Self.update([0, 1, 2, 3], completed: 4, failing: [3]))
        table.apply(try Self.update([4, 5, 6, 7], state: .final, completed: 8))
        let final = try #require(table.finalized(sortBy: metric))
        let lines = final.render()
        #expect(lines[0] == "Final Results")
        #expect(!lines.contains { $0.contains("Running...") })
        #expect(final.rows.last?.index == 3 && final.rows.last?.summary == nil)
        let values = final.rows.compactMap(\.summary).map(metric.value)
        #expect(values.count == 7)
        let ordered = zip(values, values.dropFirst()).allSatisfy { descending ? $0 >= $1 : $0 <= $1 }
        #expect(values.first == (descending ? values.max() : values.min()))
        #expect(values.first != values.last)
        #expect(ordered, "\(metric): \(values)")
        #expect(Set(final.rows.map(\.index)) == Set(0..<8))
    }

    @Test("--sort-by names: any case, hyphens for underscores; unknown names are nil")
    func metricNames() {
        #expect(BatchMetric(name: "Sharpe") == .sharpe)
        #expect(BatchMetric(name: "max-drawdown") == .maxDrawdown)
        #expect(BatchMetric(name: "total_return") == .totalReturn)
        #expect(BatchMetric(name: "sharp") == nil)
    }

    @Test("CSV comes from the final table and parses back to the same rows and numbers")
    func csvRoundTrip() throws {
        var labels = Self.labels()
        labels[1] = #"with, a comma and "quotes""#
        var table = BatchTable(labels: labels)
        table.apply(try Self.update(Array(0..<8), state: .final, completed: 8, failing: [6]))
        let final = try #require(table.finalized(sortBy: .sharpe))
        let records = CSV.parse(final.csv())
        let header = try #require(records.first)
        #expect(records.count == 9)
        #expect(records.allSatisfy { $0.count == header.count })
        func column(_ name: String) throws -> Int { try #require(header.firstIndex(of: name)) }
        for (record, row) in zip(records.dropFirst(), final.rows) {
            #expect(record[try column("index")] == String(row.index))
            #expect(record[try column("variant")] == labels[row.index])
            if let summary = row.summary {
                #expect(record[try column("status")] == "ok")
                #expect(Double(record[try column("sharpe")]) == summary.metrics.sharpe)
                #expect(Double(record[try column("total_return")]) == summary.metrics.totalReturn)
                #expect(Double(record[try column("final_equity")]) == summary.finalEquity)
            } else {
                #expect(record[try column("status")] == "error")
                #expect(record[try column("error_field")] == "strategy.positions[0].weight")
            }
        }
    }

    @Test("free text that a spreadsheet would run as a formula is defused; negative numbers are not")
    func csvInjection() throws {
        var labels = Self.labels()
        labels[2] = "=HYPERLINK(\"http://evil\")"
        labels[3] = "@SUM(A1)"
        var table = BatchTable(labels: labels)
        table.apply(try Self.update(Array(0..<8), state: .final, completed: 8, failing: []))
        let final = try #require(table.finalized(sortBy: .sharpe))
        let records = CSV.parse(final.csv())
        let header = try #require(records.first)
        let variant = try #require(header.firstIndex(of: "variant"))
        let labelsWritten = Set(records.dropFirst().map { $0[variant] })
        #expect(labelsWritten.contains("'=HYPERLINK(\"http://evil\")"))
        #expect(labelsWritten.contains("'@SUM(A1)"))
        let totalReturn = try #require(header.firstIndex(of: "total_return"))
        for (record, row) in zip(records.dropFirst(), final.rows) {
            #expect(Double(record[totalReturn]) == row.summary?.metrics.totalReturn)
        }
    }
}

/// A small RFC 4180 reader, to check the writer from the other side.
enum CSV {
    static func parse(_ text: String) -> [[String]] {
        var records: [[String]] = []
        var record: [String] = []
        var field = ""
        var quoted = false
        var characters = Array(text)[...]
        while let c = characters.popFirst() {
            if quoted {
                if c == "\"" {
                    if characters.first == "\"" { field.append("\""); characters.removeFirst() } else { quoted = false }
                } else {
                    field.append(c)
                }
            } else if c == "\"" {
                quoted = true
            } else if c == "," {
                record.append(field); field = ""
            } else if c == "\r\n" || c == "\n" {
                record.append(field); field = ""
                records.append(record); record = []
            } else {
                field.append(c)
            }
        }
        if !field.isEmpty || !record.isEmpty { record.append(field); records.append(record) }
        return records
    }
}

@Suite("Batch JSON and live redraw")
struct BatchOutputTests {
    @Test("the batch document of a final table lists every variant in rank order with snake_case keys")
    func finalDocument() throws {
        var table = BatchTable(labels: BatchTableTests.labels())
        table.apply(try BatchTableTests.update(Array(0..<8), state: .final, completed: 8, failing: [2]))
        let final = try #require(table.finalized(sortBy: .totalReturn))
        let data = try BatchDocument(final).json()
        let decoded = try JSONCoding.decoder.decode(BatchDocument.self, from: data)
        #expect(decoded == BatchDocument(final))
        #expect(decoded.state == "final" && decoded.sortedBy == "total_return" && decoded.completed == 8)
        #expect(decoded.variants.map(\.index) == final.rows.map(\.index))
        #expect(decoded.variants.map(\.rank) == Array(1...8).map(Optional.some))
        #expect(decoded.variants.last?.status == "error" && decoded.variants.last?.error?.field == "strategy.positions[0].weight")
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains("\"sorted_by\"") && text.contains("\"final_equity\"") && text.contains("\"batch_id\""))
    }

    @Test("an unfinished batch's document is unsorted, unranked and says so")
    func unfinishedDocument() throws {
        var table = BatchTable(labels: BatchTableTests.labels())
        table.apply(try BatchTableTests.update([4], completed: 1))
        let document = BatchDocument(unfinished: table)
        #expect(document.state == "partial" && document.sortedBy == nil)
        #expect(document.variants.map(\.index) == Array(0..<8))
        #expect(document.variants.filter { $0.status == "running" }.count == 7)
        #expect(document.variants.allSatisfy { $0.rank == nil })
    }

    @Test("each redraw moves the cursor back over exactly the previous frame")
    func redraw() {
        var redraw = LiveRedraw()
        let first = redraw.frame(["a", "b", "c"])
        #expect(first == "a\nb\nc\n")
        let second = redraw.frame(["d"])
        #expect(second == "\u{1B}[3F\u{1B}[Jd\n")
        #expect(redraw.frame(["e", "f"]).hasPrefix("\u{1B}[1F"))
    }
}
