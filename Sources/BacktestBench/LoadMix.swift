import Foundation

/// The share of each request kind in a load test, from `--mix single:80,batch:20`.
///
/// Weights are relative (they need not add up to 100); a kind left out gets weight 0. Names are
/// case-insensitive; duplicates, unknown kinds, negative or non-integer weights and an all-zero
/// mix are errors that name the bad part.
package struct LoadMix: Sendable, Hashable, CustomStringConvertible {
    package private(set) var weights: [RequestKind: Int]

    package init(weights: [RequestKind: Int]) {
        self.weights = weights
    }

    package static let `default` = LoadMix(weights: [.single: 80, .batch: 20])

    package init(parsing text: String) throws(MixError) {
        var weights: [RequestKind: Int] = [:]
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let fields = part.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count == 2 else { throw MixError("'\(part)' is not KIND:WEIGHT (e.g. single:80)") }
            let name = fields[0].trimmingCharacters(in: .whitespaces).lowercased()
            guard let kind = RequestKind(rawValue: name) else {
                throw MixError("unknown request kind '\(fields[0])': use \(RequestKind.allCases.map(\.rawValue).joined(separator: " or "))")
            }
            guard weights[kind] == nil else { throw MixError("'\(name)' appears twice") }
            guard let weight = Int(fields[1].trimmingCharacters(in: .whitespaces)), weight >= 0 else {
                throw MixError("weight '\(fields[1])' of \(name) is not a non-negative integer")
            }
            weights[kind] = weight
        }
        guard weights.values.reduce(0, +) > 0 else { throw MixError("the mix has no positive weight") }
        self.weights = weights
    }

    package var total: Int { weights.values.reduce(0, +) }

    /// The kind for a uniform draw `roll` in 0..<total (kinds in a fixed order).
    package func kind(forRoll roll: Int) -> RequestKind {
        var remaining = roll
        for kind in RequestKind.allCases {
            let weight = weights[kind] ?? 0
            if remaining < weight { return kind }
            remaining -= weight
        }
        return RequestKind.allCases.last { (weights[$0] ?? 0) > 0 } ?? .single
    }

    package func randomKind<G: RandomNumberGenerator>(using generator: inout G) -> RequestKind {
        kind(forRoll: Int.random(in: 0..<total, using: &generator))
    }

    package var description: String {
        RequestKind.allCases.compactMap { kind in weights[kind].map { "\(kind.rawValue):\($0)" } }.joined(separator: ",")
    }
}

package struct MixError: Error, CustomStringConvertible {
    package var description: String
    init(_ description: String) { self.description = description }
}

/// `--think-ms 50..200` (uniform in the range) or `--think-ms 100` (fixed).
package func parseThinkTime(_ text: String) throws(MixError) -> ClosedRange<Int> {
    let parts = text.components(separatedBy: "..")
    let numbers = parts.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard numbers.count == parts.count, (1...2).contains(numbers.count), numbers.allSatisfy({ $0 >= 0 }),
          numbers[0] <= numbers[numbers.count - 1]
    else { throw MixError("think time '\(text)' is not MIN..MAX or a single number of milliseconds (e.g. 50..200)") }
    return numbers[0]...numbers[numbers.count - 1]
}
