import BacktestCore
import Foundation

/// Finds a key written twice in one JSON object. Foundation's `JSONDecoder` and
/// `JSONSerialization` keep one of the two values without a word, so a strategy file with two
/// "weight" keys in a position would run with whichever the decoder kept; the files the `backtest`
/// CLI reads are checked with this first and such a file is rejected naming the key and its path.
///
/// A small scanner over the bytes of a document that is already valid JSON (run it after the
/// decoder accepted the text; on text that is not JSON it stops early and finds nothing). Keys are
/// compared after their escapes are decoded, as the decoder compares them ("a" and "\u0061" are
/// the same key). It runs before the decoder, so it bounds nesting itself at `maxDepth`, the
/// decoder's own limit: 80,000 nested `[` (an 80 KB body) overflowed the stack of the CLI and of
/// the web API's handler, and crashed the server.
package enum JSONDuplicateKeys {
    /// Most arrays and objects one inside another (Foundation's `JSONDecoder` refuses more).
    package static let maxDepth = 512

    /// The first key, in document order, that appears a second time in its object: the key and
    /// the JSON path of the object holding it ("" for the top level, "positions[0].entry"), or nil.
    /// Nil too for a document nested deeper than `maxDepth` (`reject` says so).
    package static func first(in data: Data) -> (key: String, path: String)? {
        scan(data).found
    }

    /// Throws INVALID_ARGUMENT naming the duplicated key (field: its path, "positions[0].weight";
    /// `document` names the file in the message) when `data` has one, or saying it is nested
    /// deeper than `maxDepth`.
    package static func reject(in data: Data, document: String) throws(BacktestError) {
        let scanned = scan(data)
        if let tooDeepAt = scanned.tooDeepAt {
            throw .invalidArgument("\(document) nests arrays and objects deeper than \(maxDepth) levels (at byte \(tooDeepAt))")
        }
        guard let (key, path) = scanned.found else { return }
        let field = JSONDuplicateKeys.join(path, key)
        throw .invalidArgument(
            "\(document) has the key '\(key)' twice in \(path.isEmpty ? "its top-level object" : path); write it once",
            field: field)
    }

    /// The first duplicate, and where nesting passed `maxDepth` (the scan stops there).
    private static func scan(_ data: Data) -> (found: (key: String, path: String)?, tooDeepAt: Int?) {
        var scanner = Scanner(bytes: [UInt8](data))
        let found = scanner.value(path: "")
        return (found, scanner.tooDeep ? scanner.at : nil)
    }

    static func join(_ path: String, _ key: String) -> String {
        path.isEmpty ? key : "\(path).\(key)"
    }

    private struct Scanner {
        let bytes: [UInt8]
        var at = 0
        var depth = 0
        /// Set once nesting passed `maxDepth`: the scan stops there.
        var tooDeep = false

        init(bytes: [UInt8]) { self.bytes = bytes }

        mutating func skipSpace() {
            while at < bytes.count, bytes[at] == 0x20 || bytes[at] == 0x0A || bytes[at] == 0x0D || bytes[at] == 0x09 { at += 1 }
        }

        /// Scans one value; returns the first duplicate found inside it.
        mutating func value(path: String) -> (key: String, path: String)? {
            skipSpace()
            guard at < bytes.count, !tooDeep else { return nil }
            switch bytes[at] {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                guard depth < JSONDuplicateKeys.maxDepth else {
                    tooDeep = true
                    return nil
                }
                depth += 1
                defer { depth -= 1 }
                return bytes[at] == UInt8(ascii: "{") ? object(path: path) : array(path: path)
            case UInt8(ascii: "\""): _ = string(); return nil
            default:
                // A number, true, false or null: up to the next delimiter.
                while at < bytes.count, !Self.isDelimiter(bytes[at]) { at += 1 }
                return nil
            }
        }

        static func isDelimiter(_ byte: UInt8) -> Bool {
            switch byte {
            case UInt8(ascii: ","), UInt8(ascii: "]"), UInt8(ascii: "}"), 0x20, 0x0A, 0x0D, 0x09: true
            default: false
            }
        }

        mutating func object(path: String) -> (key: String, path: String)? {
            at += 1  // {
            var keys = Set<String>()
            while true {
                skipSpace()
                guard at < bytes.count else { return nil }
                if bytes[at] == UInt8(ascii: "}") { at += 1; return nil }
                if bytes[at] == UInt8(ascii: ",") { at += 1; continue }
                guard bytes[at] == UInt8(ascii: "\""), let key = string() else { return nil }
                if !keys.insert(key).inserted { return (key, path) }
                skipSpace()
                guard at < bytes.count, bytes[at] == UInt8(ascii: ":") else { return nil }
                at += 1
                if let found = value(path: JSONDuplicateKeys.join(path, key)) { return found }
                if tooDeep { return nil }
            }
        }

        mutating func array(path: String) -> (key: String, path: String)? {
            at += 1  // [
            var index = 0
            while true {
                skipSpace()
                guard at < bytes.count else { return nil }
                if bytes[at] == UInt8(ascii: "]") { at += 1; return nil }
                if bytes[at] == UInt8(ascii: ",") { at += 1; index += 1; continue }
                if let found = value(path: "\(path)[\(index)]") { return found }
                if tooDeep { return nil }
            }
        }

        /// Scans a string starting at its opening quote; returns its decoded text.
        mutating func string() -> String? {
            let start = at
            at += 1
            var escaped = false
            while at < bytes.count {
                let byte = bytes[at]
                at += 1
                if byte == UInt8(ascii: "\\") {
                    escaped = true
                    at += 1  // the escaped character ("\u" is followed by plain hex digits)
                } else if byte == UInt8(ascii: "\"") {
                    let raw = bytes[start..<at]
                    guard escaped else { return String(decoding: raw.dropFirst().dropLast(), as: UTF8.self) }
                    return (try? JSONSerialization.jsonObject(with: Data(raw), options: .fragmentsAllowed)) as? String
                }
            }
            return nil
        }
    }
}
