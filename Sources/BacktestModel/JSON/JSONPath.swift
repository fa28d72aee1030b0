import BacktestCore

/// A path into a strategy file's JSON, in the form the engine's errors use for their `field`:
/// `commission_bps`, `positions[0].weight`, `positions[0].entry.all[1].rhs`, and `positions[*].weight`
/// for every element of an array.
package struct JSONPath: Sendable, Hashable, CustomStringConvertible {
    package enum Component: Sendable, Hashable {
        case key(String)
        case index(Int)
        /// `[*]`: every element.
        case everyIndex
    }

    package let components: [Component]
    package let description: String

    /// Parses `text`; a malformed path is INVALID_ARGUMENT naming it.
    package init(parsing text: String) throws(BacktestError) {
        func fail(_ why: String) -> BacktestError {
            .invalidArgument("bad path \(quotedInput(text, limit: 40)): \(why)", field: text)
        }
        var components: [Component] = []
        var rest = Substring(text)
        var expectKey = true
        while !rest.isEmpty {
            if rest.first == "[" {
                guard let close = rest.firstIndex(of: "]") else { throw fail("'[' without ']'") }
                let inside = rest[rest.index(after: rest.startIndex)..<close]
                if inside == "*" {
                    components.append(.everyIndex)
                } else if let index = Int(inside), index >= 0 {
                    components.append(.index(index))
                } else {
                    throw fail("'[\(inside)]' is not an array index (a number from 0, or *)")
                }
                rest = rest[rest.index(after: close)...]
                expectKey = false
            } else if rest.first == "." {
                guard !components.isEmpty else { throw fail("starts with '.'") }
                rest = rest.dropFirst()
                expectKey = true
                guard let next = rest.first, next != ".", next != "[" else { throw fail("a '.' must be followed by a key") }
            } else {
                guard expectKey else { throw fail("expected '.' or '[' after ']'") }
                let end = rest.firstIndex { $0 == "." || $0 == "[" } ?? rest.endIndex
                components.append(.key(String(rest[..<end])))
                rest = rest[end...]
                expectKey = false
            }
        }
        guard case .key? = components.first else { throw fail("must start with a key, e.g. positions[0].weight") }
        self.components = components
        self.description = text
    }

    /// A path of `components` shown as `description` (the text it stands for, where it is
    /// applied to a part of the document: `GridPlan.Scope`).
    init(components: [Component], description: String) {
        self.components = components
        self.description = description
    }

    /// The top-level key the path starts with.
    package var rootKey: String {
        if case .key(let key)? = components.first { return key }
        return ""
    }

    /// `document` with `value` at this path. Every step but the last must exist, so a typo is an
    /// error here rather than a new, ignored key; the last key of an object may be new (e.g.
    /// `commission_bps` on a file that leaves it at its default) and the strategy decoder rejects
    /// keys it does not know.
    package func setting(_ value: JSONValue, in document: JSONValue) throws(BacktestError) -> JSONValue {
        try set(value, in: document, at: components[...], walked: "")
    }

    private func set(_ value: JSONValue, in node: JSONValue, at rest: ArraySlice<Component>, walked: String) throws(BacktestError) -> JSONValue {
        guard let step = rest.first else { return value }
        let remaining = rest.dropFirst()
        let here = walked.isEmpty ? "the strategy" : "\(quotedInput(walked, limit: 40))"
        switch step {
        case .key(let key):
            guard case .object(var object) = node else {
                throw fail("\(here) is \(node.kind), not an object with key \(quotedInput(key, limit: 40))")
            }
            let path = walked.isEmpty ? key : walked + "." + key
            if let child = object[key] {
                object[key] = try set(value, in: child, at: remaining, walked: path)
            } else if remaining.isEmpty {
                object[key] = value
            } else {
                let known = object.keys.sorted().joined(separator: ", ")
                throw fail("\(here) has no key \(quotedInput(key, limit: 40)) (it has: \(known))")
            }
            return .object(object)
        case .index(let index):
            guard case .array(var array) = node else { throw fail("\(here) is \(node.kind), not an array") }
            guard array.indices.contains(index) else {
                throw fail("index \(index) is out of range: \(here) has \(array.count) element\(array.count == 1 ? "" : "s")")
            }
            array[index] = try set(value, in: array[index], at: remaining, walked: walked + "[\(index)]")
            return .array(array)
        case .everyIndex:
            guard case .array(var array) = node else { throw fail("\(here) is \(node.kind), not an array") }
            guard !array.isEmpty else { throw fail("\(here) is empty") }
            for index in array.indices {
                array[index] = try set(value, in: array[index], at: remaining, walked: walked + "[\(index)]")
            }
            return .array(array)
        }
    }

    private func fail(_ why: String) -> BacktestError {
        .invalidArgument("path \(quotedInput(description, limit: 40)): \(why)", field: description)
    }
}
