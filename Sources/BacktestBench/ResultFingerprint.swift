import BacktestCore
import BacktestModel

/// What identifies a result exactly: final equity, the number of orders and a hash of every
/// bit of the equity curve, its dates and the benchmark curve. Two runs of the same request
/// must agree on all of it; a result meant for another user (another request) cannot.
///
/// The hash is FNV-1a over the IEEE bit patterns (not a rounded text), so a difference in the
/// last bit of one day's equity is a mismatch.
package struct ResultFingerprint: Sendable, Hashable, CustomStringConvertible {
    package var strategyName: String
    package var finalEquity: Double
    package var orderCount: Int
    package var days: Int
    package var curveHash: UInt64

    package init(_ result: BacktestResult) {
        strategyName = result.strategyName
        finalEquity = result.finalEquity
        orderCount = result.orders.count
        days = result.dates.count
        var hash = FNV1a64()
        for date in result.dates { hash.add(UInt64(bitPattern: Int64(date.daysSinceEpoch))) }
        for value in result.equity { hash.add(value.bitPattern) }
        for value in result.benchmark { hash.add(value.bitPattern) }
        curveHash = hash.value
    }

    package var description: String {
        "'\(strategyName)' final equity \(finalEquity), \(orderCount) orders, \(days) days, curve \(String(curveHash, radix: 16))"
    }
}

/// The expected answer of one `BenchRequest`, from a baseline run before the load starts.
package enum ExpectedOutcome: Sendable, Hashable {
    case single(ResultFingerprint)
    /// One fingerprint per variant, in request order.
    case batch([ResultFingerprint])

    /// nil when `actual` matches; otherwise what differs, for the report.
    package func mismatch(in actual: ExpectedOutcome) -> String? {
        switch (self, actual) {
        case (.single(let expected), .single(let got)):
            return expected == got ? nil : "expected \(expected), got \(got)"
        case (.batch(let expected), .batch(let got)):
            guard expected.count == got.count else { return "expected \(expected.count) variant results, got \(got.count)" }
            for (index, pair) in zip(expected, got).enumerated() where pair.0 != pair.1 {
                return "variant \(index): expected \(pair.0), got \(pair.1)"
            }
            return nil
        default:
            return "expected a \(self.kind) answer, got a \(actual.kind) answer"
        }
    }

    var kind: RequestKind {
        switch self {
        case .single: .single
        case .batch: .batch
        }
    }

    /// A batch's final outcome from its streamed updates: every variant must have a result
    /// (a variant error is a failed request, reported with its status code).
    package static func batch(_ results: [VariantResult], total: Int) throws(BacktestError) -> ExpectedOutcome {
        var fingerprints = [ResultFingerprint?](repeating: nil, count: total)
        for variant in results {
            guard fingerprints.indices.contains(variant.index) else {
                throw BacktestError(.internal, "variant index \(variant.index) outside the batch of \(total)")
            }
            switch variant.outcome {
            case .success(let result): fingerprints[variant.index] = ResultFingerprint(result)
            case .failure(let error): throw error
            }
        }
        let complete = fingerprints.compactMap { $0 }
        guard complete.count == total else {
            throw BacktestError(.internal, "batch ended with \(complete.count) of \(total) variant results")
        }
        return .batch(complete)
    }
}
