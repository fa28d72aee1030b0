/// The path of a request field, as `ErrorStatus.field` names it: the proto's field names level
/// by level from the call's method, repeated fields with their index in brackets:
/// `run_backtest.settings.start_date`, `run_batch.variants[2].positions[0].entry.compare.op`.
///
/// Paths are built one level at a time with `child` (`path.child("weight")`) or, for an element
/// of a repeated field, `child(_:index:)` (`path.child("positions", index: 0)`), so a new field
/// slots in by its proto name. Engine code below the service builds paths relative to the roots
/// `strategy` and `settings` (the roots a stand-alone backtest uses); the service moves them under
/// the call with `rerooted(_:)`. PROTOCOL.md ("Field paths") states the scheme.
///
/// A path is a chain of immutable levels, each pointing at its parent: `child` adds one level and
/// builds no text, so a path can be carried through every position and operand of a large
/// request for the price of a small allocation per level. The walks over every position
/// (decoding, validation, analysis, signals) go further and build a path only for an error,
/// through closures and `@autoclosure` field arguments. The text (`description`) is rendered only
/// when something asks for it, in practice when an error names the field. Equality and hashing compare the rendered text (two paths spelling the same field
/// are equal however they were built).
public struct FieldPath: Sendable, Hashable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// One level: `name`, or `name[index]` for an element of a repeated field, below `parent`.
    /// A path made from text (`init(_:)`) is one level holding that text as its name.
    private final class Level: Sendable {
        let parent: Level?
        let name: String
        /// The element's index; nil for a plain field.
        let index: Int?

        init(parent: Level?, name: String, index: Int?) {
            self.parent = parent
            self.name = name
            self.index = index
        }
    }

    /// nil for the empty path ("", no field).
    private let last: Level?

    private init(last: Level?) { self.last = last }

    /// The path spelled by `text` ("run_batch.variants[3]"), kept as one level; "" is no field.
    public init(_ text: String) { last = text.isEmpty ? nil : Level(parent: nil, name: text, index: nil) }
    /// `init(_:)` of the literal: `let root: FieldPath = "run_backtest.strategy"`.
    public init(stringLiteral text: String) { self.init(text) }

    /// The path as text ("" for no field), rendered on each call.
    public var description: String {
        var text = ""
        if let last { Self.render(last, into: &text) }
        return text
    }

    private static func render(_ level: Level, into text: inout String) {
        if let parent = level.parent { render(parent, into: &text) }
        // A level below the empty text starts it without a dot (`child` has always joined so).
        if !text.isEmpty { text += "." }
        text += level.name
        if let index = level.index { text += "[\(index)]" }
    }

    /// The field `name` of the message at this path.
    public func child(_ name: String) -> FieldPath {
        FieldPath(last: Level(parent: last, name: name, index: nil))
    }

    /// Element `index` of the repeated field `name`.
    public func child(_ name: String, index: Int) -> FieldPath {
        FieldPath(last: Level(parent: last, name: name, index: index))
    }

    /// Paths are equal when they spell the same text, however they were built.
    public static func == (lhs: FieldPath, rhs: FieldPath) -> Bool {
        lhs.last === rhs.last || lhs.description == rhs.description
    }

    /// Hashes the text, as `==` compares it.
    public func hash(into hasher: inout Hasher) { hasher.combine(description) }

    /// Whether this path is `root` or lies below it ("strategy.positions[0]" is under "strategy";
    /// "strategy_name" is not).
    public func isUnder(_ root: FieldPath) -> Bool {
        let text = description, prefix = root.description
        guard text.hasPrefix(prefix) else { return false }
        let rest = text.dropFirst(prefix.count)
        return rest.isEmpty || rest.first == "." || rest.first == "["
    }

    /// This path with the leading `root` replaced by `newRoot`; nil when it is not under `root`.
    public func replacingRoot(_ root: FieldPath, with newRoot: FieldPath) -> FieldPath? {
        guard isUnder(root) else { return nil }
        return FieldPath(newRoot.description + description.dropFirst(root.description.count))
    }

    // MARK: Roots

    /// The strategy of a stand-alone backtest (engine code); the service re-roots it.
    public static let strategy: FieldPath = "strategy"
    /// The settings of a stand-alone backtest (engine code); the service re-roots it.
    public static let settings: FieldPath = "settings"
}

extension BacktestError {
    /// INVALID_ARGUMENT about the field at `path`.
    public static func invalidArgument(_ message: String, at path: FieldPath) -> BacktestError {
        BacktestError(.invalidArgument, message, field: path.description)
    }

    /// This error with its field moved from the stand-alone roots (`strategy`, `settings`) to where
    /// they sit in the call (`strategy` → e.g. `run_batch.variants[3]`, `settings` →
    /// `run_batch.settings`). Fields under neither root, and errors without a field, are left as
    /// they are.
    public func rerooted(strategy: FieldPath, settings: FieldPath) -> BacktestError {
        var error = self
        let field = FieldPath(self.field)
        if let moved = field.replacingRoot(.strategy, with: strategy) ?? field.replacingRoot(.settings, with: settings) {
            error.field = moved.description
        }
        return error
    }
}

/// Text from a request as error messages show it: at most `limit` characters, quoted, with
/// control, quote, backslash and non-ASCII characters escaped, and "..." when cut. A message never
/// echoes more of what a client sent (a 4 MB ticker is shown as its first 16 characters).
public func quotedInput(_ text: some StringProtocol, limit: Int = 16) -> String {
    "'\(escapedPrefix(text, limit: limit, escapingQuotes: true))'" + (text.unicodeScalars.count > limit ? "..." : "")
}

/// Text from a request inside a message without quotes (a label such as `path=value`): as
/// `quotedInput` shows it, but with quote and backslash as they are, and "..." when cut.
public func shownInput(_ text: some StringProtocol, limit: Int = 40) -> String {
    escapedPrefix(text, limit: limit, escapingQuotes: false) + (text.unicodeScalars.count > limit ? "..." : "")
}

/// The first `limit` characters of `text`, control and non-ASCII ones escaped (and `'` and `\`
/// when `escapingQuotes`).
private func escapedPrefix(_ text: some StringProtocol, limit: Int, escapingQuotes: Bool) -> String {
    var shown = ""
    for scalar in text.unicodeScalars.prefix(limit) {
        let plain = scalar.isASCII && scalar.value >= 0x20 && scalar.value != 0x7F && !(escapingQuotes && (scalar == "'" || scalar == "\\"))
        shown += plain ? String(scalar) : scalar.escaped(asASCII: true)
    }
    return shown
}
