import BacktestCore
import Foundation

/// One value put at one path of the base strategy file.
package struct Override: Sendable, Hashable {
    package var path: JSONPath
    package var value: JSONValue

    package init(path: JSONPath, value: JSONValue) {
        self.path = path
        self.value = value
    }

    package var label: String { "\(path)=\(value.label)" }
}

/// `--vary path=v1,v2,...`: one path and the values it takes. Values are JSON where they parse
/// as JSON and plain strings otherwise (`positions[0].entry.rhs=sma:100,sma:200`); commas inside
/// brackets, braces or quotes do not split (`positions[0].exit={"lhs":"rsi:14","op":">","rhs":70}`).
package struct VaryOption: Sendable, Hashable {
    package var path: JSONPath
    package var values: [JSONValue]

    package init(path: JSONPath, values: [JSONValue]) {
        self.path = path
        self.values = values
    }

    package init(parsing text: String) throws(BacktestError) {
        guard let equals = text.firstIndex(of: "=") else {
            throw .invalidArgument("--vary '\(text)' must be path=value1,value2,... (e.g. positions[0].weight=0.25,0.5)")
        }
        let path = try JSONPath(parsing: String(text[..<equals]))
        let values = Self.split(text[text.index(after: equals)...])
        guard !values.isEmpty, !values.contains(where: \.isEmpty) else {
            throw .invalidArgument("--vary \(path): empty value in '\(text)'", field: path.description)
        }
        self.init(path: path, values: values.map(JSONValue.commandLine))
    }

    /// Splits at the commas outside brackets, braces and strings.
    package static func split(_ text: Substring) -> [String] {
        var parts: [String] = []
        var current = ""
        var depth = 0
        var inString = false
        var escaped = false
        for character in text {
            if inString {
                if escaped { escaped = false } else if character == "\\" { escaped = true } else if character == "\"" { inString = false }
            } else if character == "\"" {
                inString = true
            } else if character == "[" || character == "{" {
                depth += 1
            } else if character == "]" || character == "}" {
                depth -= 1
            } else if character == "," && depth == 0 {
                parts.append(current.trimmingCharacters(in: .whitespaces))
                current = ""
                continue
            }
            current.append(character)
        }
        parts.append(current.trimmingCharacters(in: .whitespaces))
        return parts
    }
}

/// A strategy of a batch with the label the table shows for it.
package struct Variant: Sendable {
    /// Position in the batch request; progress updates refer to it.
    package var index: Int
    /// "positions[0].weight=0.5, commission_bps=2"; "base" for the unchanged file.
    package var label: String
    package var strategy: Strategy
}

/// Expands a base strategy file into the variants of a batch.
///
/// Variants are the cartesian product of the variants file's entries (or the base alone) and
/// every `--vary` option, in order: the first `--vary` changes slowest, like nested loops.
///
/// A variants file (`--variants f.json`) is a JSON array of objects. Each key is a path as for
/// `--vary` and each value the JSON to put there, merged onto the base file:
///
///     [{"positions[0].weight": 0.5}, {"positions[0].weight": 1, "commission_bps": 5},
///      {"name": "tight", "positions[0].entry.rhs": "sma:100"}]
///
/// A whole strategy works too: its top-level keys ("name", "positions", ...) replace the base's,
/// and keys it leaves out keep the base's values. Settings (start, end, initial_capital,
/// adjustment, benchmark) belong to the whole batch and are rejected in a variant.
package enum VariantExpansion {
    /// More than this is almost surely a typo in a --vary list, and would not fit a request frame.
    package static let maxVariants = 10_000

    package static func expand(base: Data, vary: [VaryOption], variantsFile: Data? = nil) throws(BacktestError) -> [Variant] {
        let document: JSONValue
        do {
            document = try JSONDecoder().decode(JSONValue.self, from: base)
        } catch {
            throw .invalidArgument("strategy file is not JSON: \(error)")
        }
        let fileSets = try variantsFile.map(overrideSets) ?? [[]]
        let count = vary.reduce(fileSets.count) { $0 * max(1, $1.values.count) }
        guard count <= maxVariants else {
            throw .invalidArgument("\(count) variants: a batch holds at most \(maxVariants)")
        }
        var combinations: [(file: [Override], vary: [Override])] = fileSets.map { ($0, []) }
        for (k, option) in vary.enumerated() {
            try rejectSetting(option.path)
            // The grid's rule (`GridPlan`): two options setting one place would let the later
            // silently win (a tester's `positions[*].weight` with `positions[0].weight`).
            if let other = vary.prefix(k).first(where: { GridPlan.overlaps($0.path, option.path) }) {
                throw .invalidArgument(
                    "--vary \(quotedInput(option.path.description, limit: 40)) overlaps --vary \(quotedInput(other.path.description, limit: 40)): one path lies inside the other or matches it through [*], so both would set one place; give each place one --vary",
                    field: option.path.description)
            }
            combinations = combinations.flatMap { combination in
                option.values.map { (combination.file, combination.vary + [Override(path: option.path, value: $0)]) }
            }
        }
        var variants: [Variant] = []
        for (index, combination) in combinations.enumerated() {
            var edited = document
            for override in combination.file + combination.vary { edited = try override.path.setting(override.value, in: edited) }
            let label = Self.label(file: combination.file, vary: combination.vary)
            variants.append(Variant(index: index, label: label, strategy: try strategy(from: edited, label: label)))
        }
        return variants
    }

    /// The entries of a variants file, each a list of overrides in the order written.
    package static func overrideSets(_ data: Data) throws(BacktestError) -> [[Override]] {
        let entries: [JSONValue]
        do {
            entries = try JSONDecoder().decode([JSONValue].self, from: data)
        } catch {
            // Where the syntax breaks, as for strategy files; never Foundation's own dump.
            let expected = "a variants file is a JSON array of objects"
            throw .invalidArgument("variants file: \(StrategyFile.syntaxError(in: data, expected: expected) ?? "must be a JSON array of objects")")
        }
        try JSONDuplicateKeys.reject(in: data, document: "the variants file")
        guard !entries.isEmpty else { throw .invalidArgument("variants file has no variants") }
        var sets: [[Override]] = []
        for (index, entry) in entries.enumerated() {
            guard case .object(let object) = entry else {
                throw .invalidArgument("variants file: entry \(index) is \(entry.kind), not an object", field: "[\(index)]")
            }
            var set: [Override] = []
            for key in object.keys.sorted() {
                let path = try JSONPath(parsing: key)
                try rejectSetting(path)
                set.append(Override(path: path, value: object[key] ?? .null))
            }
            sets.append(set)
        }
        return sets
    }

    /// "positions[0].weight=0.5, fill=close"; "base" for the file unchanged. A variants-file
    /// entry that sets "name" is called by it instead of by its overrides ("fast, fill=close").
    private static func label(file: [Override], vary: [Override]) -> String {
        var parts = file.map(\.label)
        if let name = file.first(where: { $0.path.components == [.key("name")] }), case .string(let text) = name.value, !text.isEmpty {
            parts = [text]
        }
        parts += vary.map(\.label)
        return parts.isEmpty ? "base" : parts.joined(separator: ", ")
    }

    package static func rejectSetting(_ path: JSONPath) throws(BacktestError) {
        let settings: Set<String> = ["start", "end", "initial_capital", "adjustment", "benchmark"]
        if settings.contains(path.rootKey) {
            throw .invalidArgument(
                "'\(path.rootKey)' is a setting of the whole batch, not of one variant (set it in the strategy file)",
                field: path.description)
        }
    }

    package static func strategy(from document: JSONValue, label: String) throws(BacktestError) -> Strategy {
        let data: Data
        do {
            data = try JSONEncoder().encode(document)
        } catch {
            throw .invalidArgument("variant \(label): \(error)")
        }
        do {
            return try StrategyFile.decode(data).strategy
        } catch {
            throw BacktestError(error.code, "variant \(shownInput(label, limit: 100)): \(error.message)", field: error.field)
        }
    }
}
