import BacktestCore
import Foundation

/// One axis of a grid: a path into the strategy and the values it takes.
///
/// The path has the strategy file's JSON syntax, the same as the CLI's `--vary`
/// (`positions[0].entry.lhs`, `commission_bps`, `positions[*].weight`); each value is JSON where
/// it parses as JSON and a plain string otherwise (`0.5`, `sma:100`). `range` adds the values of
/// `A..B` or `A..B/STEP` (see `GridAxis.expandRange`) after `values`.
public struct GridAxis: Sendable, Hashable {
    public var path: String
    public var values: [String]
    /// "" for none; "sma:5..104", "1..10/3", "0.25..1/0.25".
    public var range: String
    /// Axes with the same non-zero group advance together (zipped); 0 = an axis of its own.
    public var zipGroup: Int

    public init(path: String, values: [String] = [], range: String = "", zipGroup: Int = 0) {
        self.path = path
        self.values = values
        self.range = range
        self.zipGroup = zipGroup
    }

    /// `values` followed by the expansion of `range`. Errors name `field` + ".range".
    public func allValues(field: String = "axis") throws(BacktestError) -> [String] {
        guard !range.isEmpty else { return values }
        return values + (try Self.expandRange(range, field: field + ".range"))
    }

    /// Most values one range may produce (a typo guard: `1..1e9`).
    public static let maxRangeValues = 1_000_000

    /// `PREFIX A..B[/STEP]`, both ends inclusive, STEP 1 by default: "sma:5..8" = sma:5, sma:6,
    /// sma:7, sma:8; "0.25..1/0.25" = 0.25, 0.5, 0.75, 1. The prefix is any text before the first
    /// number (`sma:`, `rsi:`). Numbers print without a fraction when they are whole. Throws
    /// INVALID_ARGUMENT naming `field` for anything else (B < A, a step <= 0, too many values).
    public static func expandRange(_ text: String, field: String) throws(BacktestError) -> [String] {
        let range = try parsedRange(text, field: field)
        return (0..<range.count).map { i in range.prefix + format(range.low + Double(i) * range.step) }
    }

    /// How many values `values` and `range` give, without making them (a tester's 156-byte
    /// requests with 1,000,000-value ranges cost up to 44 s of CPU each before the grid was
    /// refused as too large). Errors as `allValues`.
    public func valueCount(field: String = "axis") throws(BacktestError) -> Int {
        guard !range.isEmpty else { return values.count }
        return values.count + (try Self.parsedRange(range, field: field + ".range").count)
    }

    /// A range's prefix, start, step and number of values, checked as `expandRange` says.
    static func parsedRange(_ text: String, field: String) throws(BacktestError) -> (prefix: String, low: Double, step: Double, count: Int) {
        func fail(_ why: String) -> BacktestError {
            .invalidArgument("range \(quotedInput(text, limit: 40)): \(why) (expected e.g. sma:5..104, 1..10/3, 0.25..1/0.25)", field: field)
        }
        let shape: RangeShape
        switch rangeShape(text) {
        case .success(let parsed): shape = parsed
        case .failure(let error): throw fail(error.why)
        }
        let (prefix, low, high) = (shape.prefix, shape.low, shape.high)
        var step = 1.0
        if let stepText = shape.step {
            guard let parsed = Double(stepText), parsed.isFinite else { throw fail("the step \(quotedInput(stepText, limit: 40)) is not a number") }
            guard parsed > 0 else { throw fail("the step must be positive (it is \(format(parsed)))") }
            step = parsed
        }
        guard high >= low else { throw fail("the end \(format(high)) is before the start \(format(low))") }
        // Counted in Double first: (1e300 - 1) / 1 does not fit an Int.
        let exact = ((high - low) / step + 1e-9).rounded(.down) + 1
        guard exact <= Double(maxRangeValues) else {
            throw fail("too large: \(exact < 1e15 ? String(Int64(exact)) : String(format: "%.3g", exact)) values, more than the limit of \(maxRangeValues)")
        }
        return (prefix, low, step, Int(exact))
    }

    /// The parts of `PREFIX A..B[/STEP]` before their values are checked.
    struct RangeShape {
        var prefix: String
        var low: Double
        var high: Double
        /// The text after "/", nil when there is none.
        var step: Substring?
    }

    /// `text` split into a range's parts, or why it does not have a range's shape ("no '..'",
    /// no number on one side). The step is only split off; `expandRange` checks it.
    static func rangeShape(_ text: String) -> Result<RangeShape, RangeShapeError> {
        guard let dots = text.range(of: "..") else { return .failure("no '..'") }
        let left = text[..<dots.lowerBound]
        var right = text[dots.upperBound...]
        var step: Substring?
        if let slash = right.firstIndex(of: "/") {
            step = right[right.index(after: slash)...]
            right = right[..<slash]
        }
        // The prefix ends where the trailing number of the left side starts.
        var numberStart = left.endIndex
        while numberStart > left.startIndex {
            let before = left.index(before: numberStart)
            let character = left[before]
            guard character.isNumber || character == "." || character == "-" || character == "+" || character == "e" else { break }
            if character == "e", !(left[left.startIndex..<before].last?.isNumber ?? false) { break }
            numberStart = before
        }
        guard let low = Double(left[numberStart...]), low.isFinite else { return .failure("no number before '..'") }
        guard let high = Double(right), high.isFinite else { return .failure("no number after '..'") }
        return .success(RangeShape(prefix: String(left[..<numberStart]), low: low, high: high, step: step))
    }

    /// Why a text is not shaped like a range.
    struct RangeShapeError: Error, ExpressibleByStringLiteral {
        var why: String
        init(stringLiteral why: String) { self.why = why }
    }

    /// 5 → "5", 0.25 → "0.25", 0.30000000000000004 → "0.3" (12 significant digits).
    static func format(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        let text = String(format: "%.12g", value)
        return text
    }

    /// `--grid path=values`: values split at commas outside brackets/braces/quotes as for
    /// `--vary`; each item that is a range (`sma:5..104`, `1..10/2`) is expanded in place.
    /// A malformed range (end before start, a step <= 0, more than `maxRangeValues` values) is
    /// INVALID_ARGUMENT saying which, naming `field` (the axis in the call, e.g.
    /// `run_batch.grid.axes[0]`) or, without one, the axis's path.
    ///
    /// `rangesExpanded` false keeps a last item that is a range as `range` (checked, not
    /// expanded), for a request the server expands: a new user's `name=n1..1000000` was sent as a
    /// million values, an 8.9 MB frame the connection refused, instead of being counted and
    /// refused at once with a message saying what to change.
    public init(parsing text: String, field: String? = nil, rangesExpanded: Bool = true) throws(BacktestError) {
        guard let equals = text.firstIndex(of: "=") else {
            throw .invalidArgument("--grid \(quotedInput(text, limit: 40)) must be path=values (e.g. positions[0].entry.lhs=sma:5..104)")
        }
        let path = String(text[..<equals])
        _ = try JSONPath(parsing: path)
        let items = VaryOption.split(text[text.index(after: equals)...])
        guard !items.isEmpty, !items.contains(where: \.isEmpty) else {
            throw .invalidArgument("--grid \(path): empty value in \(quotedInput(text, limit: 40))", field: path)
        }
        var values: [String] = []
        var range = ""
        for (i, item) in items.enumerated() {
            if Self.isRange(item) {
                do throws(BacktestError) {
                    if !rangesExpanded, i == items.count - 1 {
                        // Sent as the axis's `range`: named so, as the server would.
                        _ = try Self.parsedRange(item, field: field.map { $0 + ".range" } ?? path)
                        range = item
                    } else {
                        values += try Self.expandRange(item, field: field ?? path)
                    }
                } catch {
                    throw BacktestError(error.code, "--grid \(quotedInput(path, limit: 40)): \(error.message)", field: error.field)
                }
            } else {
                values.append(item)
            }
        }
        self.init(path: path, values: values, range: range)
    }

    /// Whether a command-line item is a range rather than a value: it has "..", is not JSON, and
    /// has a number on both sides. A range-shaped item whose step, order or size is wrong is a
    /// range too, so `expandRange` says what is wrong with it (not "parameter is not a number").
    static func isRange(_ item: String) -> Bool {
        guard item.contains(".."), !item.hasPrefix("{"), !item.hasPrefix("["), !item.hasPrefix("\"") else { return false }
        if case .success = rangeShape(item) { return true }
        return false
    }
}

/// Variants as the cartesian product of axes over a base strategy, expanded by whoever runs them
/// (`BatchRequest.grid`). The first axis (or zip group) changes slowest, like nested loops and
/// like the CLI's `--vary`.
public struct Grid: Sendable, Hashable {
    public var base: Strategy
    public var axes: [GridAxis]

    public init(base: Strategy, axes: [GridAxis]) {
        self.base = base
        self.axes = axes
    }

    /// The number of variants (zip groups counted once, by their first axis); 0 when an axis
    /// or range is malformed (resolving the grid says why).
    public var count: Int {
        var seen: Set<Int> = []
        var total = 1
        for axis in axes {
            if axis.zipGroup != 0, !seen.insert(axis.zipGroup).inserted { continue }
            guard let count = try? axis.valueCount() else { return 0 }
            total = total.multipliedReportingOverflow(by: count).partialValue
        }
        return axes.isEmpty ? 0 : total
    }
}

/// A grid resolved once: every axis value parsed, applied to the base and decoded once to check
/// it, and a way to build variant `i` by assigning decoded pieces into the base.
///
/// Memory: what it keeps per axis value is the value's text and its decoded piece (a number for
/// `commission_bps`, a condition for `positions[0].entry`), not a whole strategy per value: a
/// tester's 700,000-value axis kept a decoded strategy per value, about 550 bytes each, on top of
/// the batch's summaries. The strategies the shared phase checks (`analysisStrategy`) are built
/// again one at a time.
///
/// Variant `i` equals what `VariantExpansion.expand` makes of the base (as JSON) with the same
/// axes as `--vary` options (zipped axes aside, which `--vary` has not): `GridTests`.
package struct GridPlan: Sendable {
    /// One dimension of the product: one axis, or a zip group of axes of equal length.
    struct Dimension: Sendable {
        var axes: [Int]
        var count: Int
    }

    package let grid: Grid
    /// `grid.base` as its JSON form decodes.
    let base: Strategy
    package let count: Int
    /// Per axis, its values' texts (as given or from the range).
    package let values: [[String]]
    let paths: [JSONPath]
    let dimensions: [Dimension]
    /// Per axis and value, the decoded piece at the axis's path; nil when the path is not one
    /// `StrategySlot` handles (then variants are built through JSON, slower but the same).
    let fragments: [[StrategySlot.Fragment]]?
    /// Per axis, its slot; nil with `fragments`.
    let slots: [StrategySlot]?
    /// Per axis, its slot in the scope its values are decoded in (`Scope`: index 0 for the one
    /// position the path names).
    let localSlots: [StrategySlot?]?
    /// The base as JSON, kept only when variants are built through it (`fragments` nil): it
    /// takes about 1 KB a position (a hostile tester's retained grids over a 100,000-position base
    /// held 114 MB each). Otherwise made again on the rare path that needs it (`document()`).
    let baseDocument: JSONValue?
    /// About what `values` and `fragments` hold in memory, in bytes: a `String` and a fragment
    /// per value, and texts too long to be stored inline (over 15 UTF-8 bytes). Batch admission
    /// counts it beside the summaries (a 700,000-value axis holds about 50 MB).
    package let valueBytes: Int
    /// How many of the base's positions were written as JSON to resolve the grid (`BaseJSON`):
    /// the positions its paths name, not the base's size, unless a path needs the whole.
    package let encodedPositions: Int

    /// What the plan holds for the batch's life, in bytes: `valueBytes` and its base (as a
    /// strategy, about `bytesPerPosition` a position, once or twice, and as JSON when variants
    /// are built through it). Batch admission counts it, and a finished batch keeps counting it
    /// while it is retained (a hostile tester's eight retained grids over a 100,000-position base
    /// held 1 GB outside the batch budget).
    package let heldBytes: Int
    /// A decoded position in memory, its conditions included, rounded up (measured: retained
    /// grids over 100,000-position bases grew the server by about 300 bytes a position a copy).
    package static let bytesPerPosition = 400
    /// A position as JSON (`JSONValue` dictionaries), rounded up.
    static let bytesPerDocumentPosition = 1_200

    /// INVALID_ARGUMENT naming the axis where the values of the axes `changesEvery` says change
    /// every position, times `positions`, pass `maxWholeChecks`.
    static func checkWholeChecks(_ grid: Grid, field: String, positions: Int, changesEvery: (Int) -> Bool) throws(BacktestError) {
        var wholeChecks = 0
        for a in grid.axes.indices where changesEvery(a) {
            guard let count = try? grid.axes[a].valueCount() else { continue }
            wholeChecks += count * max(1, positions)
            guard wholeChecks <= maxWholeChecks else {
                throw .invalidArgument(
                    "axis \(quotedInput(grid.axes[a].path, limit: 40)) changes every position of the base: its values are checked against all \(positions) positions, \(wholeChecks) position checks with the axes before it; at most \(maxWholeChecks) (use fewer values or positions, or a path to one position or field)",
                    field: "\(field).axes[\(a)]")
            }
        }
    }

    /// See `heldBytes`.
    package static func heldBytes(positions: Int, copies: Int, document: Bool) -> Int {
        positions * (copies * bytesPerPosition + (document ? bytesPerDocumentPosition : 0))
    }

    /// Most variants a grid may have.
    package static let maxVariants = 1_000_000
    /// Most position checks the values of axes that change every position may cost together
    /// (values x the base's positions): about a second of CPU.
    package static let maxWholeChecks = 20_000_000

    /// Resolves `grid`; errors name the field below `field`: the axis's `path` when the path
    /// does not fit the base ("run_batch.grid.axes[1].path": an index out of range, a key the
    /// strategy does not have), the value when it makes an invalid strategy
    /// ("run_batch.grid.axes[1].values[3]", counting `values` then the range's expansion).
    /// Checks `cancellation` before each value: CANCELLED once it is set.
    package init(_ grid: Grid, field: String = "grid", cancellation: CancellationFlag? = nil) throws(BacktestError) {
        guard !grid.axes.isEmpty else { throw .invalidArgument("a grid needs at least one axis", field: field + ".axes") }
        // The base goes through its JSON form, where an indicator without parameters would read
        // as the CLI's key shorthand ("sma" = sma:30): a request names every parameter.
        for (spec, path) in grid.base.indicatorSpecs(root: FieldPath(field).child("base_strategy")) {
            try IndicatorCatalog.requireParameters(spec, field: path.description)
        }
        // The bound on checks against every position, from the paths and the axes' counts,
        // before the base goes through JSON (seconds for 100,000 positions: a hostile tester's
        // grid over the bound was refused after 8.3 s of CPU). Checked again below, once the
        // values show whether variants are built through JSON.
        // (A path that does not parse is its own error, below.)
        let parsed = grid.axes.map { try? JSONPath(parsing: $0.path) }
        if !parsed.contains(nil) {
            let typed = parsed.allSatisfy { $0.flatMap(StrategySlot.init) != nil }
            try Self.checkWholeChecks(grid, field: field, positions: grid.base.positions.count) { a in
                !typed || parsed[a].flatMap(StrategySlot.init)?.changesOnePlace != true
            }
        }
        // The base as its JSON decodes (what the CLI's expansion starts from), so typed
        // assignment and the JSON path give the same variants; its JSON is made only where a
        // path needs it (one position for most paths).
        let decodedBase: Strategy
        do throws(BacktestError) { decodedBase = try grid.base.fileForm() } catch {
            throw BacktestError(error.code, error.message, field: field + ".base_strategy" + (error.field.isEmpty ? "" : "." + error.field))
        }
        let document = BaseJSON(decodedBase)
        base = decodedBase
        do throws(BacktestError) { try Self.checkName(decodedBase.name) } catch {
            throw BacktestError(error.code, error.message, field: field + ".base_strategy.name")
        }
        // Sizes first, from the axes' counts (a range is counted, not expanded): a grid over the
        // limit is refused before any value is made or decoded.
        let (dimensions, count) = try Self.shape(of: grid, field: field)
        self.count = count
        // Paths: one that does not fit the base is the path's error, whatever the values; the
        // texts a result carries (`parameters`) are bounded so that any one result fits a frame.
        var paths: [JSONPath] = []
        var values: [[String]] = []
        var scopes: [Scope] = []
        var parameterBytes = 0
        for (a, axis) in grid.axes.enumerated() {
            let axisField = "\(field).axes[\(a)]"
            guard axis.path.utf8.count <= Self.maxPathBytes else {
                throw .invalidArgument(
                    "axis path \(quotedInput(axis.path, limit: 40)) is \(axis.path.utf8.count) bytes; at most \(Self.maxPathBytes)", field: axisField + ".path")
            }
            // A path check decodes (part of) the base once: a yield point between them (a
            // tester's 1,000 zipped axes over a 1,000-position base held a compute thread for
            // seconds without one).
            try cancellation?.check()
            let texts = try axis.allValues(field: axisField)
            let path: JSONPath
            do throws(BacktestError) {
                path = try JSONPath(parsing: axis.path)
                try VariantExpansion.rejectSetting(path)
            } catch {
                throw BacktestError(error.code, error.message, field: axisField + ".path")
            }
            let scope = try Scope(path, in: document)
            try Self.checkPath(path, in: scope, first: texts.first.map(JSONValue.commandLine), field: axisField + ".path")
            // The same place however it is spelled (`positions[0]`, `positions[00]`), or a place
            // another axis also sets: a path inside another's (`positions[0]` and
            // `positions[0].weight`) or through `[*]` (`positions[*].weight` and
            // `positions[0].weight`). Either would let the later axis overwrite part of what the
            // earlier one set (a sixth tester's overlapping axes were accepted, the later winning).
            if let same = paths.firstIndex(where: { $0.components == path.components }) {
                throw .invalidArgument("axis \(quotedInput(axis.path, limit: 40)) has the same path as axes[\(same)]: use one axis with both's values", field: axisField + ".path")
            }
            if let other = paths.firstIndex(where: { Self.overlaps($0, path) }) {
                throw .invalidArgument(
                    "axis \(quotedInput(axis.path, limit: 40)) overlaps axes[\(other)] \(quotedInput(grid.axes[other].path, limit: 40)): one path lies inside the other or matches it through [*], so both would set one place; give each place one axis",
                    field: axisField + ".path")
            }
            var longest = 0
            for (v, text) in texts.enumerated() {
                let bytes = text.utf8.count
                guard bytes <= Self.maxValueBytes else {
                    throw .invalidArgument("a value is \(bytes) bytes; at most \(Self.maxValueBytes)", field: "\(axisField).values[\(v)]")
                }
                longest = max(longest, bytes)
            }
            parameterBytes += axis.path.utf8.count + longest + 8
            guard parameterBytes <= Self.maxParameterBytes else {
                throw .invalidArgument(
                    "a variant's axis paths and values take up to \(parameterBytes) bytes by axis \(a); at most \(Self.maxParameterBytes) (each result carries them)",
                    field: field + ".axes")
            }
            paths.append(path)
            scopes.append(scope)
            values.append(texts)
        }
        let lastKeys: [String?] = paths.map { if case .key(let key)? = $0.components.last { key } else { nil } }
        // Typed assignment when every path is a slot (no path lies inside another: checked above).
        var slots: [StrategySlot]? = []
        for path in paths where slots != nil {
            if let slot = StrategySlot(path) { slots?.append(slot) } else { slots = nil }
        }
        // Each value decoded once, to check it, and kept as its piece only; decoded in its
        // scope (the one position it changes), so checking it costs its own size, not the base's.
        var fragments: [[StrategySlot.Fragment]]? = slots == nil ? nil : []
        var localSlotsFound: [StrategySlot?] = []
        for (a, path) in paths.enumerated() {
            let axisField = "\(field).axes[\(a)]"
            var pieces: [StrategySlot.Fragment] = []
            if fragments != nil { pieces.reserveCapacity(values[a].count) }
            let local = scopes[a].localPath(path)
            let localSlot = slots == nil ? nil : StrategySlot(local)
            localSlotsFound.append(localSlot)
            for (v, text) in values[a].enumerated() {
                do throws(BacktestError) {
                    try cancellation?.check()
                    let value = JSONValue.commandLine(text)
                    try Self.checkTickers(value, key: lastKeys[a])
                    if fragments != nil, let piece = slots?[a].fragment(decoding: value) {
                        // The first value also shows the base takes the piece (else the JSON path).
                        if v == 0, slots?[a].write(piece, into: decodedBase) == nil { fragments = nil }
                        pieces.append(piece)
                        continue
                    }
                    let strategy = try scopes[a].decode(value, at: path, local: local, label: Self.label(grid.axes[a].path, text))
                    try Self.checkName(strategy.name)
                    if let slot = slots?[a], fragments != nil {
                        if let piece = localSlot?.read(strategy), v > 0 || slot.write(piece, into: decodedBase) != nil {
                            pieces.append(piece)
                        } else {
                            fragments = nil
                        }
                    }
                } catch {
                    throw BacktestError(error.code, Self.valueMessage(error.message), field: "\(axisField).values[\(v)]")
                }
            }
            fragments?.append(pieces)
        }
        // What the shared phase's checks cost where a value changes the whole strategy (`[*]`,
        // a path no slot handles): each such value against every position of the base. Bounded,
        // with the axis named (a tester's 1,000,000 such checks of 1,000 positions took 48 s of
        // CPU to refuse the grid).
        try Self.checkWholeChecks(grid, field: field, positions: decodedBase.positions.count) { a in
            fragments == nil || slots?[a].changesOnePlace != true
        }
        self.paths = paths
        self.values = values
        self.dimensions = dimensions
        self.fragments = fragments
        self.slots = fragments == nil ? nil : slots
        baseDocument = fragments == nil ? try document.whole() : nil
        encodedPositions = document.encodedPositions
        // The base as sent shares the decoded base's storage when they are equal (tickers
        // already upper case): one copy of the positions, not two.
        let shared = grid.base == decodedBase
        self.grid = shared ? Grid(base: decodedBase, axes: grid.axes) : grid
        localSlots = fragments == nil ? nil : localSlotsFound
        let perValue = fragments == nil ? MemoryLayout<String>.stride : Self.bytesPerValue
        valueBytes = values.reduce(0) { sum, texts in
            texts.reduce(sum + texts.count * perValue) { $0 + ($1.utf8.count > 15 ? $1.utf8.count + 32 : 0) }
        }
        heldBytes = valueBytes + Self.heldBytes(positions: decodedBase.positions.count, copies: shared ? 1 : 2, document: baseDocument != nil)
    }

    /// The number of variants `grid` has, from its axes' counts (ranges counted, not expanded):
    /// INVALID_ARGUMENT as `init` says for a bad range, an axis without values, unequal zip
    /// groups or more than `maxVariants`. For refusing a grid before it is resolved.
    package static func count(of grid: Grid, field: String = "grid") throws(BacktestError) -> Int {
        try shape(of: grid, field: field).count
    }

    /// The dimensions of `grid`'s product and its number of variants, from its axes' counts; the
    /// errors of `count(of:)`.
    static func shape(of grid: Grid, field: String) throws(BacktestError) -> (dimensions: [Dimension], count: Int) {
        guard !grid.axes.isEmpty else { throw .invalidArgument("a grid needs at least one axis", field: field + ".axes") }
        var counts: [Int] = []
        for (a, axis) in grid.axes.enumerated() {
            let count = try axis.valueCount(field: "\(field).axes[\(a)]")
            guard count > 0 else { throw .invalidArgument("axis \(quotedInput(axis.path, limit: 40)) has no values", field: "\(field).axes[\(a)].values") }
            counts.append(count)
        }
        let product = try Self.dimensions(grid.axes, counts: counts, field: field)
        return (product, try Self.product(product, field: field))
    }

    /// `valueBytes` as far as it is known before the values are made: a `String` and a fragment per
    /// value (texts over 15 bytes add theirs, which only the values show).
    package static func minimumValueBytes(of grid: Grid) -> Int {
        grid.axes.reduce(0) { $0 + ((try? $1.valueCount()) ?? 0) * bytesPerValue }
    }

    /// What a value's text and decoded piece take, not counting a text too long to be inline.
    static let bytesPerValue = MemoryLayout<String>.stride + MemoryLayout<StrategySlot.Fragment>.stride

    /// Longest axis path, in UTF-8 bytes.
    package static let maxPathBytes = 256
    /// Longest axis value (as given or from a range), in UTF-8 bytes: a condition as JSON fits.
    package static let maxValueBytes = 4_096
    /// Most bytes of axis paths and values one variant carries in its result's `parameters`
    /// (each axis's path and longest value): any one result then fits a frame. A tester's
    /// 2.5 MB `name` value made every update 5 MB (it is in the name and in `parameters`), and
    /// the batch could not be read at all.
    package static let maxParameterBytes = 65_536
    /// Longest strategy name, in UTF-8 bytes (as for RunBacktest and listed variants, PROTOCOL.md §6).
    package static let maxNameBytes = 256

    static func checkName(_ name: String) throws(BacktestError) {
        guard name.utf8.count <= maxNameBytes else {
            throw .invalidArgument("the strategy's name is \(name.utf8.count) bytes; at most \(maxNameBytes)")
        }
    }

    /// Tickers in a value as sent (the value itself when the path ends in `ticker`, and every
    /// `ticker` key inside it) follow `Ticker.syntax`, as a request's must (PROTOCOL.md §6): the
    /// strategy decoder upper-cases them for the CLI's files, so a grid accepted `aapl`.
    static func checkTickers(_ value: JSONValue, key: String?) throws(BacktestError) {
        switch value {
        case .string(let text) where key == "ticker": try Ticker.validate(text, field: "")
        case .object(let members): for (key, member) in members { try checkTickers(member, key: key) }
        case .array(let elements): for element in elements { try checkTickers(element, key: nil) }
        default: break
        }
    }

    /// "path=value" for messages, each part bounded (`shownInput`: a tester's 4 MB grid value
    /// came back in a 4 MB message).
    static func label(_ path: String, _ value: String) -> String {
        "\(shownInput(path))=\(shownInput(value))"
    }

    /// The dimensions of the product: one per axis, a zip group's axes together at its first
    /// axis's position (equal counts required, else INVALID_ARGUMENT naming `zip_group`).
    static func dimensions(_ axes: [GridAxis], counts: [Int], field: String) throws(BacktestError) -> [Dimension] {
        var dimensions: [Dimension] = []
        var groupDimension: [Int: Int] = [:]
        for (a, axis) in axes.enumerated() {
            if axis.zipGroup != 0, let d = groupDimension[axis.zipGroup] {
                guard dimensions[d].count == counts[a] else {
                    throw .invalidArgument(
                        "axis \(quotedInput(axis.path, limit: 40)) has \(counts[a]) values but its zip group \(axis.zipGroup) has \(dimensions[d].count)",
                        field: "\(field).axes[\(a)].zip_group")
                }
                dimensions[d].axes.append(a)
            } else {
                if axis.zipGroup != 0 { groupDimension[axis.zipGroup] = dimensions.count }
                dimensions.append(Dimension(axes: [a], count: counts[a]))
            }
        }
        return dimensions
    }

    /// The number of variants, or INVALID_ARGUMENT naming `axes` when over `maxVariants`.
    static func product(_ dimensions: [Dimension], field: String) throws(BacktestError) -> Int {
        var total = 1
        for dimension in dimensions {
            let (product, overflow) = total.multipliedReportingOverflow(by: dimension.count)
            guard !overflow, product <= Self.maxVariants else {
                // The whole product, to say how far over it is (a tester's message gave no size).
                let sizes = dimensions.map(\.count)
                let whole = sizes.reduce((partialValue: 1, overflow: false)) { sum, size in
                    let next = sum.partialValue.multipliedReportingOverflow(by: size)
                    return (next.partialValue, sum.overflow || next.overflow)
                }
                let size = whole.overflow ? "more than \(Int.max)" : "\(whole.partialValue)"
                throw .invalidArgument(
                    "the grid has \(size) variants (\(sizes.map(String.init).joined(separator: " x "))), more than the \(Self.maxVariants) allowed; use fewer values or zip axes together",
                    field: field + ".axes")
            }
            total = product
        }
        return total
    }

    /// The base as JSON, made a part at a time: the strategy's own fields, a position, the
    /// whole only where it is needed (variants built through JSON; naming where a `[*]` path
    /// does not fit). Each part is encoded once. Through Foundation JSON the whole of a
    /// 100,000-position base took seconds (a grid with one bad value over such a base took 5.6 s
    /// to refuse).
    final class BaseJSON {
        let base: Strategy
        private var fieldsCache: [String: JSONValue]?
        private var positionCache: [Int: JSONValue] = [:]
        private var wholeCache: JSONValue?
        /// Positions encoded so far (the whole base counts all of them).
        private(set) var encodedPositions = 0

        init(_ base: Strategy) { self.base = base }

        static func json<Value: Encodable>(_ value: Value) throws(BacktestError) -> JSONValue {
            do {
                return try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(value))
            } catch {
                throw .invalidArgument("the grid's base strategy cannot be encoded: \(error)")
            }
        }

        /// The strategy's object with `positions` empty.
        func fields() throws(BacktestError) -> [String: JSONValue] {
            if let fieldsCache { return fieldsCache }
            var empty = base
            empty.positions = []
            guard case .object(let object) = try Self.json(empty) else {
                throw .invalidArgument("the grid's base strategy is not a JSON object")
            }
            fieldsCache = object
            return object
        }

        /// Position `p` (an index of `base.positions`).
        func position(_ p: Int) throws(BacktestError) -> JSONValue {
            if let known = positionCache[p] { return known }
            let made = try Self.json(base.positions[p])
            positionCache[p] = made
            encodedPositions += 1
            return made
        }

        /// The strategy's object with `positions` replaced.
        func with(positions: [JSONValue]) throws(BacktestError) -> JSONValue {
            var object = try fields()
            object["positions"] = .array(positions)
            return .object(object)
        }

        /// The whole base.
        func whole() throws(BacktestError) -> JSONValue {
            if let wholeCache { return wholeCache }
            let made = try Self.json(base)
            wholeCache = made
            encodedPositions += base.positions.count
            return made
        }

        /// The indices of the base's positions distinct by `key`, each the first of its equals,
        /// in order.
        func distinctPositions<Key: Hashable>(by key: (Position) -> Key) -> [Int] {
            var seen: Set<Key> = []
            var firsts: [Int] = []
            for (p, position) in base.positions.enumerated() where seen.insert(key(position)).inserted { firsts.append(p) }
            return firsts
        }

        /// The positions that stand for all of them where `path` (`positions[*]…`) is set and
        /// decoded: setting a position's key, or the position, and decoding the result does not
        /// depend on the position (decoding checks each key alone); deeper into `entry` or
        /// `exit`, it depends on that condition only; elsewhere, on the whole position.
        func representatives(of path: JSONPath) -> [Int] {
            let c = path.components
            guard c.count > 3 else { return [0] }
            switch c[2] {
            case .key("entry"): return distinctPositions { $0.entry }
            case .key("exit"): return distinctPositions { $0.exit }
            default: return distinctPositions { $0 }
            }
        }

        /// The whole base's shape with only position `p` written (null elsewhere): a path
        /// walks it as it walks the whole, so its errors read the same.
        func only(_ p: Int) throws(BacktestError) -> JSONValue {
            var positions = [JSONValue](repeating: .null, count: base.positions.count)
            positions[p] = try position(p)
            return try with(positions: positions)
        }
    }

    /// Where an axis's values are applied and decoded to check them: a document holding the one
    /// position of the base the path names (`positions[3].…`), or the base's first position only
    /// when the path names a field of the strategy itself (`commission_bps`), so a check costs
    /// the value's size, not the base's; no position for `positions` (the value is the list)
    /// and for a path that does not fit the list; for `[*]`, the positions that stand for all
    /// (`BaseJSON.representatives`: a grid over 100,000 positions took 8 s to check
    /// `positions[*].weight` through the whole base). A tester's 1,000 axes over a 1,000-position
    /// base decoded the whole base twice per axis and once per value that is not a plain number.
    /// Decoding does not look across positions (validation does) and stops at the first position
    /// that fails, so a value decodes in its scope as in the whole base, and its error is the
    /// whole base's with the position's index put back (`inBase`).
    struct Scope {
        /// The part of the base the values are applied to.
        let document: JSONValue
        /// The whole base, as parts.
        let base: BaseJSON
        /// The position the path names, held at index 0 of `document`.
        let position: Int?
        /// For `[*]`: the base's index of each position of `document` (its distinct positions).
        let representatives: [Int]?

        init(_ path: JSONPath, in base: BaseJSON) throws(BacktestError) {
            self.base = base
            let count = base.base.positions.count
            let c = path.components
            switch (c.first, c.count > 1 ? c[1] : nil) {
            case _ where count == 0:
                (document, position, representatives) = (try base.whole(), nil, nil)
            case (.key("positions")?, .index(let p)?) where p < count:
                (document, position, representatives) = (try base.with(positions: [base.position(p)]), p, nil)
            case (.key("positions")?, .everyIndex?):
                let firsts = base.representatives(of: path)
                var positions: [JSONValue] = []
                positions.reserveCapacity(firsts.count)
                for p in firsts { positions.append(try base.position(p)) }
                (document, position, representatives) = (try base.with(positions: positions), nil, firsts.count < count ? firsts : nil)
            case (.key("positions")?, nil):
                // The whole list is the value: the base's positions do not matter.
                (document, position, representatives) = (try base.with(positions: []), nil, nil)
            case (.key("positions")?, _):
                // An index out of range or a key: the walk fails on the list's length or kind,
                // not on its positions.
                (document, position, representatives) = (try base.with(positions: Array(repeating: .null, count: count)), nil, nil)
            default:
                (document, position, representatives) = (try base.with(positions: [base.position(0)]), nil, nil)
            }
        }

        /// `path` as it applies to `document`.
        func localPath(_ path: JSONPath) -> JSONPath {
            guard position != nil else { return path }
            var components = path.components
            components[1] = .index(0)
            return JSONPath(components: components, description: path.description)
        }

        /// `document` with `value` at `local` (`localPath(path)`); the error `path` has in the whole base.
        func edit(_ value: JSONValue, at path: JSONPath, local: JSONPath) throws(BacktestError) -> JSONValue {
            do {
                return try local.setting(value, in: document)
            } catch {
                // The walk names the indices it took: walk the base's shape instead. (A path to a
                // field of the strategy itself walks no position: its error is the base's.)
                if let position { _ = try path.setting(value, in: base.only(position)) }
                if representatives != nil { _ = try path.setting(value, in: base.whole()) }
                throw error
            }
        }

        /// The strategy `edit` makes; the error the value makes in the whole base.
        func decode(_ value: JSONValue, at path: JSONPath, local: JSONPath, label: String) throws(BacktestError) -> Strategy {
            let edited = try edit(value, at: path, local: local)
            do {
                return try VariantExpansion.strategy(from: edited, label: label)
            } catch {
                throw inBase(error)
            }
        }

        /// `error`, found in `document`, as the whole base has it: the decoder names the
        /// position's fields from index 0.
        func inBase(_ error: BacktestError) -> BacktestError {
            guard position != nil || representatives != nil, error.field.hasPrefix("positions["),
                  let close = error.field.firstIndex(of: "]"),
                  let local = Int(error.field[error.field.index(error.field.startIndex, offsetBy: "positions[".count)..<close]) else {
                return error
            }
            let index = position ?? representatives.map { local < $0.count ? $0[local] : local } ?? local
            return BacktestError(error.code, error.message, field: "positions[\(index)]" + error.field[error.field.index(after: close)...])
        }
    }

    /// Checks that `path` fits the base (as JSON, in `scope`): every step but the last exists,
    /// and a new last key is one the strategy file knows. Errors are INVALID_ARGUMENT naming
    /// `field` (a tester's `positions[0].bogus` was reported under `values[0]`, as if the value
    /// were wrong). `first`: the axis's first value, for probing a `[*]` path.
    static func checkPath(_ path: JSONPath, in scope: Scope, first: JSONValue?, field: String) throws(BacktestError) {
        // A null where the path ends: the steps must exist, and a key the base lacks must be one
        // the decoder knows (null reads as absent for optional keys; an unknown key is its
        // error whatever the value). Other errors of this probe are the values' to report.
        // Through `[*]` the null can fail on the first element for its own sake (a required
        // `lhs`) and hide a later element the path does not fit at all (an `all` entry has no
        // `lhs`: a tester's such path was named on `values[0]`), so a `[*]` path is probed with
        // the axis's first value too.
        var probes = [JSONValue.null]
        if let first, path.components.contains(.everyIndex) { probes.append(first) }
        let local = scope.localPath(path)
        for value in probes {
            do throws(BacktestError) {
                let edited = try scope.edit(value, at: path, local: local)
                do throws(BacktestError) {
                    _ = try VariantExpansion.strategy(from: edited, label: shownInput(path.description))
                } catch where error.message.contains("unknown key") {
                    // In the base's terms (a `[*]` path reaches many places: say where).
                    let again = scope.inBase(error)
                    let hint = path.components.contains(.everyIndex) ? "; a [*] path must fit every position: use a path per position where they differ" : ""
                    throw BacktestError(
                        again.code, (again.field.isEmpty ? again.message : "\(shownInput(again.field, limit: 60)): \(again.message)") + hint, field: again.field)
                } catch {}
            } catch {
                throw BacktestError(error.code, error.message, field: field)
            }
        }
    }

    /// A value's decoding error, with how values are read when it wanted a string (a value is
    /// JSON where it parses as JSON, so `1` is a number).
    static func valueMessage(_ message: String) -> String {
        guard message.hasSuffix("expected a string, found a number") || message.hasSuffix("expected a string, found true or false") else {
            return message
        }
        return message + " (a value is JSON where it parses as JSON: write \"\\\"1\\\"\" for the string 1)"
    }

    /// Whether one path is a prefix of the other (also through `[*]`).
    static func overlaps(_ a: JSONPath, _ b: JSONPath) -> Bool {
        for (x, y) in zip(a.components, b.components) {
            switch (x, y) {
            case (.everyIndex, .index), (.index, .everyIndex), (.everyIndex, .everyIndex): continue
            default: if x != y { return false }
            }
        }
        return true
    }

    /// The value index of each axis for variant `index`.
    package func valueIndices(of index: Int) -> [Int] {
        var result = [Int](repeating: 0, count: paths.count)
        var rest = index
        for dimension in dimensions.reversed() {
            let value = rest % dimension.count
            rest /= dimension.count
            for axis in dimension.axes { result[axis] = value }
        }
        return result
    }

    /// The variant's axis values, in axis order.
    package func parameters(of index: Int) -> [GridParameter] {
        let indices = valueIndices(of: index)
        return grid.axes.indices.map { GridParameter(path: grid.axes[$0].path, value: values[$0][indices[$0]]) }
    }

    /// Variant `index`: the base with every axis's value assigned.
    package func strategy(_ index: Int) throws(BacktestError) -> Strategy {
        let indices = valueIndices(of: index)
        if let fragments, let slots {
            // In place: the positions are copied once, not once per axis (a tester's 1,000 zipped
            // axes over 1,000 positions copied a million positions per variant).
            var strategy = base
            for axis in paths.indices {
                guard slots[axis].write(fragments[axis][indices[axis]], into: &strategy) else { break }
            }
            return strategy
        }
        var document = try self.document()
        for axis in paths.indices {
            document = try paths[axis].setting(JSONValue.commandLine(values[axis][indices[axis]]), in: document)
        }
        return try VariantExpansion.strategy(from: document, label: parameters(of: index).map { Self.label($0.path, $0.value) }.joined(separator: ", "))
    }

    /// The axis and value index of analysis strategy `i` (`1..<analysisCount`).
    func axisValue(ofAnalysis i: Int) -> (axis: Int, value: Int) {
        var axis = 0
        var value = i - 1
        while axis < values.count, value >= values[axis].count {
            value -= values[axis].count
            axis += 1
        }
        precondition(axis < values.count, "analysis strategy \(i) is outside the grid's \(analysisCount)")
        return (axis, value)
    }

    /// What analysis strategy `i` (`analysisStrategy`) changes in the base, so that the shared
    /// phase checks the change alone: the fields of the strategy itself (the strategy, its
    /// positions the base's), one position (its index and new value), or anything else (the
    /// whole strategy).
    package enum AnalysisChange {
        case base
        case fields(Strategy)
        case position(Int, Position)
        case whole(Strategy)
    }

    /// See `AnalysisChange`; costs the change, not the base's size, but for `.whole`. Throws
    /// only what `init` already checked.
    package func analysisChange(_ i: Int) throws(BacktestError) -> AnalysisChange {
        guard i > 0 else { return .base }
        let (axis, value) = axisValue(ofAnalysis: i)
        if let fragments, let slot = slots?[axis], slot.changesOnePlace {
            let piece = fragments[axis][value]
            if let p = slot.position {
                if base.positions.indices.contains(p), let local = localSlots?[axis] {
                    var one = base
                    one.positions = [base.positions[p]]
                    if local.write(piece, into: &one) { return .position(p, one.positions[0]) }
                }
            } else {
                var strategy = base
                if slot.write(piece, into: &strategy) { return .fields(strategy) }
            }
        }
        return .whole(try analysisStrategy(i))
    }

    /// How many strategies the shared phase checks: the base, then the base with each axis
    /// value applied, axis by axis (`analysisStrategy`).
    package var analysisCount: Int { 1 + values.reduce(0) { $0 + $1.count } }

    /// Per axis, its number of values.
    package var valueCounts: [Int] { values.map(\.count) }

    /// Analysis strategy `i` (`0..<analysisCount`): 0 the base, then the base with one axis value
    /// applied, axis by axis. Their analyses together cover every variant (a variant's pieces all
    /// come from one of them). Built on demand (decoded once more when the paths are not typed
    /// slots); throws only what `init` already checked.
    package func analysisStrategy(_ i: Int) throws(BacktestError) -> Strategy {
        guard i > 0 else { return base }
        let (axis, value) = axisValue(ofAnalysis: i)
        if let fragments, let written = slots?[axis].write(fragments[axis][value], into: base) {
            return written
        }
        let edited = try paths[axis].setting(JSONValue.commandLine(values[axis][value]), in: document())
        return try VariantExpansion.strategy(from: edited, label: Self.label(grid.axes[axis].path, values[axis][value]))
    }

    /// The base as JSON: `baseDocument`, or the decoded base encoded again (it decodes to itself).
    func document() throws(BacktestError) -> JSONValue {
        if let baseDocument { return baseDocument }
        do throws(BacktestError) { return try BaseJSON.json(base) } catch {
            throw BacktestError(.internal, error.message)
        }
    }
}

/// A typed place in a `Strategy` named by a JSON path: reads the decoded value there from one
/// strategy and writes it into another, so a grid variant costs assignments, not a JSON decode.
/// Paths inside conditions are supported down to `lhs`, `rhs` and `op` of a comparison (through
/// `all[i]`, `any[i]` and `not`), in one position or through `[*]` in every one; others (`id`, a
/// comparison's `ticker`) make `init` return nil.
struct StrategySlot {
    enum Fragment: Sendable {
        case string(String), number(Double), bool(Bool), fill(FillTiming), rebalance(Rebalance)
        case direction(PositionDirection), sizing(SizingMode)
        /// A position's optional number (stop levels, max_bars); nil = absent.
        case optionalNumber(Double?)
        case positions([Position]), comparison(Comparison)
        // Boxed: a `Position` inline made every fragment 136 bytes, a number axis's too (a
        // grid keeps one per axis value: 100 MB for a 700,000-value axis).
        indirect case position(Position), condition(Condition?), operand(Operand)
    }

    enum ConditionStep: Equatable { case member(all: Bool, Int), not }
    enum Leaf: Equatable { case condition, lhs, rhs, op }
    /// A position's numeric field of issue 15 (sizing and exits), for stop x target grids.
    enum PositionNumber: String {
        case size, stopLoss = "stop_loss", takeProfit = "take_profit", trailingStop = "trailing_stop", maxBars = "max_bars"
        case atrPeriod = "stop_atr_period"

        func read(_ p: Position) -> Double? {
            switch self {
            case .size: p.size
            case .stopLoss: p.exits.stopLoss
            case .takeProfit: p.exits.takeProfit
            case .trailingStop: p.exits.trailingStop
            case .maxBars: p.exits.maxBars.map(Double.init)
            case .atrPeriod: p.exits.atrPeriod.map(Double.init)
            }
        }

        /// nil when `value` does not fit the field (size absent, max_bars not an integer).
        func write(_ value: Double?, into p: inout Position) -> Bool {
            switch self {
            case .size:
                guard let value else { return false }
                p.size = value
            case .stopLoss: p.exits.stopLoss = value
            case .takeProfit: p.exits.takeProfit = value
            case .trailingStop: p.exits.trailingStop = value
            case .maxBars:
                guard let value else { p.exits.maxBars = nil; return true }
                guard let bars = Position.wholeCount(value) else { return false }
                p.exits.maxBars = bars
            case .atrPeriod:
                guard let value else { p.exits.atrPeriod = nil; return true }
                guard let period = Position.wholeCount(value) else { return false }
                p.exits.atrPeriod = period
            }
            return true
        }
    }
    enum Place {
        case name, fill, commission, slippage, rebalance, leverage, positions
        /// `nil`: every position (`[*]`), here and below.
        case position(Int?)
        case ticker(Int?), weight(Int?), direction(Int?), sizing(Int?)
        case positionNumber(Int?, PositionNumber)
        /// `position` nil: every position's (`[*]`).
        case condition(position: Int?, exit: Bool, steps: [ConditionStep], leaf: Leaf)
    }

    let place: Place

    init?(_ path: JSONPath) {
        let c = path.components
        guard case .key(let root)? = c.first else { return nil }
        switch (root, c.count) {
        case ("name", 1): place = .name
        case ("fill", 1): place = .fill
        case ("commission_bps", 1): place = .commission
        case ("slippage_bps", 1): place = .slippage
        case ("rebalance", 1): place = .rebalance
        case ("allow_leverage", 1): place = .leverage
        case ("positions", 1): place = .positions
        case ("positions", _):
            var position: Int?
            switch c[1] {
            case .index(let i): position = i
            case .everyIndex: position = nil
            case .key: return nil
            }
            if c.count == 2 {
                place = .position(position)
                return
            }
            guard case .key(let field) = c[2] else { return nil }
            switch field {
            case "ticker" where c.count == 3: place = .ticker(position)
            case "weight" where c.count == 3: place = .weight(position)
            case "direction" where c.count == 3: place = .direction(position)
            case "sizing" where c.count == 3: place = .sizing(position)
            case let key where c.count == 3 && PositionNumber(rawValue: key) != nil:
                place = .positionNumber(position, PositionNumber(rawValue: key)!)
            case "entry", "exit":
                var steps: [ConditionStep] = []
                var leaf = Leaf.condition
                var i = 3
                while i < c.count {
                    guard case .key(let key) = c[i] else { return nil }
                    switch key {
                    case "all", "any":
                        guard i + 1 < c.count, case .index(let member) = c[i + 1] else { return nil }
                        steps.append(.member(all: key == "all", member))
                        i += 2
                        continue
                    case "not": steps.append(.not)
                    case "lhs", "rhs", "op":
                        guard i == c.count - 1 else { return nil }
                        leaf = key == "lhs" ? .lhs : key == "rhs" ? .rhs : .op
                    default: return nil
                    }
                    i += 1
                }
                place = .condition(position: position, exit: field == "exit", steps: steps, leaf: leaf)
            default: return nil
            }
        default: return nil
        }
    }

    func read(_ s: Strategy) -> Fragment? {
        switch place {
        case .name: return .string(s.name)
        case .fill: return .fill(s.fill)
        case .commission: return .number(s.commissionBps)
        case .slippage: return .number(s.slippageBps)
        case .rebalance: return .rebalance(s.rebalance)
        case .leverage: return .bool(s.allowLeverage)
        case .positions: return .positions(s.positions)
        case .position(let p): return s.positions.indices.contains(p ?? 0) ? .position(s.positions[p ?? 0]) : nil
        case .direction(let p): return s.positions.indices.contains(p ?? 0) ? .direction(s.positions[p ?? 0].direction) : nil
        case .sizing(let p): return s.positions.indices.contains(p ?? 0) ? .sizing(s.positions[p ?? 0].sizing) : nil
        case .ticker(let p): return s.positions.indices.contains(p ?? 0) ? .string(s.positions[p ?? 0].ticker) : nil
        case .weight(let p): return s.positions.indices.contains(p ?? 0) ? .number(s.positions[p ?? 0].weight) : nil
        case .positionNumber(let p, let field):
            return s.positions.indices.contains(p ?? 0) ? .optionalNumber(field.read(s.positions[p ?? 0])) : nil
        case .condition(let p, let exit, let steps, let leaf):
            let p = p ?? 0
            guard s.positions.indices.contains(p) else { return nil }
            guard let root = exit ? s.positions[p].exit : s.positions[p].entry else {
                return steps.isEmpty && leaf == .condition ? .condition(nil) : nil
            }
            guard let node = Self.walk(root, steps) else { return nil }
            switch (leaf, node) {
            case (.condition, _): return .condition(node)
            case (.lhs, .compare(let lhs, _, _)): return .operand(lhs)
            case (.rhs, .compare(_, _, let rhs)): return .operand(rhs)
            case (.op, .compare(_, let op, _)): return .comparison(op)
            default: return nil
            }
        }
    }

    /// The fragment a JSON `value` decodes to at this place without decoding a strategy, for
    /// the places whose decoding is plain: a finite number for `commission_bps`, `slippage_bps`,
    /// a weight or a size, a positive one for a stop level, a string of at most
    /// `GridPlan.maxNameBytes` for the name. nil otherwise (then the value goes
    /// through the strategy decoder, which also says what is wrong with it). Why: a decode costs
    /// about 40 µs, so a 700,000-value range took 29 s of CPU to resolve before this.
    func fragment(decoding value: JSONValue) -> Fragment? {
        if case .name = place, case .string(let name) = value, name.utf8.count <= GridPlan.maxNameBytes { return .string(name) }
        guard case .number(let x) = value, x.isFinite else { return nil }
        switch place {
        case .commission, .slippage, .weight: return .number(x)
        case .positionNumber(_, .size): return .optionalNumber(x)
        case .positionNumber(_, .stopLoss), .positionNumber(_, .takeProfit), .positionNumber(_, .trailingStop):
            return x > 0 ? .optionalNumber(x) : nil
        default: return nil
        }
    }

    /// `s` with `fragment` at this place; nil when the place does not exist in `s` or the
    /// fragment is of another kind.
    func write(_ fragment: Fragment, into s: Strategy) -> Strategy? {
        var s = s
        return write(fragment, into: &s) ? s : nil
    }

    /// Whether the place is one field of the strategy or of one position (not `[*]`, not the
    /// whole positions list): a value there changes that much of the base.
    var changesOnePlace: Bool {
        switch place {
        case .positions, .position(nil), .ticker(nil), .weight(nil), .direction(nil), .sizing(nil), .positionNumber(nil, _),
             .condition(nil, _, _, _): false
        default: true
        }
    }

    /// The position the place is in, if one (`positions[3].…`).
    var position: Int? {
        switch place {
        case .position(let p?), .ticker(let p?), .weight(let p?), .direction(let p?), .sizing(let p?), .positionNumber(let p?, _),
             .condition(let p?, _, _, _): p
        default: nil
        }
    }

    /// Writes `fragment` at this place in `s`, in place; false when the place does not exist in
    /// `s` or the fragment is of another kind (then `s` may be partly written).
    func write(_ fragment: Fragment, into s: inout Strategy) -> Bool {
        switch (place, fragment) {
        case (.name, .string(let v)): s.name = v
        case (.fill, .fill(let v)): s.fill = v
        case (.commission, .number(let v)): s.commissionBps = v
        case (.slippage, .number(let v)): s.slippageBps = v
        case (.rebalance, .rebalance(let v)): s.rebalance = v
        case (.leverage, .bool(let v)): s.allowLeverage = v
        case (.positions, .positions(let v)): s.positions = v
        case (.position(let p), .position(let v)): return Self.edit(p, of: &s) { $0 = v; return true }
        case (.direction(let p), .direction(let v)): return Self.edit(p, of: &s) { $0.direction = v; return true }
        case (.sizing(let p), .sizing(let v)): return Self.edit(p, of: &s) { $0.sizing = v; return true }
        case (.ticker(let p), .string(let v)): return Self.edit(p, of: &s) { $0.ticker = v; return true }
        case (.weight(let p), .number(let v)): return Self.edit(p, of: &s) { $0.weight = v; return true }
        case (.positionNumber(let p, let field), .optionalNumber(let v)): return Self.edit(p, of: &s) { field.write(v, into: &$0) }
        case (.condition(let p, let exit, let steps, let leaf), _):
            return Self.edit(p, of: &s) { position in
                let root = exit ? position.exit : position.entry
                let replaced: Condition?
                if steps.isEmpty, leaf == .condition {
                    guard case .condition(let v) = fragment else { return false }
                    replaced = v
                } else {
                    guard let root, let edited = Self.replace(in: root, steps[...], leaf: leaf, with: fragment) else { return false }
                    replaced = edited
                }
                if exit {
                    position.exit = replaced
                } else {
                    guard let replaced else { return false }
                    position.entry = replaced
                }
                return true
            }
        default: return false
        }
        return true
    }

    /// Applies `change` to position `p` of `s`, or to every position (`p` nil: `[*]`); false
    /// when there is no such position or `change` says the fragment does not fit it.
    static func edit(_ p: Int?, of s: inout Strategy, _ change: (inout Position) -> Bool) -> Bool {
        guard !s.positions.isEmpty else { return false }
        if let p {
            guard s.positions.indices.contains(p) else { return false }
            return change(&s.positions[p])
        }
        for i in s.positions.indices {
            guard change(&s.positions[i]) else { return false }
        }
        return true
    }

    static func walk(_ condition: Condition, _ steps: [ConditionStep]) -> Condition? {
        var node = condition
        for step in steps {
            switch (step, node) {
            case (.member(true, let i), .all(let members)), (.member(false, let i), .any(let members)):
                guard members.indices.contains(i) else { return nil }
                node = members[i]
            case (.not, .not(let inner)): node = inner
            default: return nil
            }
        }
        return node
    }

    static func replace(in node: Condition, _ steps: ArraySlice<ConditionStep>, leaf: Leaf, with fragment: Fragment) -> Condition? {
        guard let step = steps.first else {
            switch (leaf, node, fragment) {
            case (.condition, _, .condition(let v?)): return v
            case (.lhs, .compare(_, let op, let rhs), .operand(let v)): return .compare(lhs: v, op: op, rhs: rhs)
            case (.rhs, .compare(let lhs, let op, _), .operand(let v)): return .compare(lhs: lhs, op: op, rhs: v)
            case (.op, .compare(let lhs, _, let rhs), .comparison(let v)): return .compare(lhs: lhs, op: v, rhs: rhs)
            default: return nil
            }
        }
        let rest = steps.dropFirst()
        switch (step, node) {
        case (.member(true, let i), .all(var members)):
            guard members.indices.contains(i), let edited = replace(in: members[i], rest, leaf: leaf, with: fragment) else { return nil }
            members[i] = edited
            return .all(members)
        case (.member(false, let i), .any(var members)):
            guard members.indices.contains(i), let edited = replace(in: members[i], rest, leaf: leaf, with: fragment) else { return nil }
            members[i] = edited
            return .any(members)
        case (.not, .not(let inner)):
            guard let edited = replace(in: inner, rest, leaf: leaf, with: fragment) else { return nil }
            return .not(edited)
        default: return nil
        }
    }
}

/// A metric that ranks variants (`GetVariantResults.best_by`, `--sort-by`, `--heatmap`).
public enum SummaryMetric: String, Sendable, Hashable, CaseIterable {
    case totalReturn = "total_return", cagr, volatility, sharpe, sortino, maxDrawdown = "max_drawdown", calmar, alpha
    case beta, winRate = "win_rate", profitFactor = "profit_factor", tradeCount = "trade_count", exposure
    case finalEquity = "final_equity"

    /// The raw value, any case, "-" for "_" ("max-drawdown", "Sharpe").
    public init?(name: String) {
        self.init(rawValue: name.lowercased().replacingOccurrences(of: "-", with: "_"))
    }

    /// Best first is descending for every metric but volatility (max drawdown is a negative
    /// fraction: the shallowest is the largest).
    public var higherIsBetter: Bool { self != .volatility }

    /// The metric's value in `summary`.
    public func value(_ summary: BacktestSummary) -> Double {
        value(metrics: summary.metrics, finalEquity: summary.finalEquity)
    }

    /// The metric's value among a result's `metrics` and its final equity: the one reading of a
    /// metric, for summaries here and for the CLI's batch tables (BacktestReporting).
    public func value(metrics m: Metrics, finalEquity: Double) -> Double {
        switch self {
        case .totalReturn: m.totalReturn
        case .cagr: m.cagr
        case .volatility: m.volatility
        case .sharpe: m.sharpe
        case .sortino: m.sortino
        case .maxDrawdown: m.maxDrawdown
        case .calmar: m.calmar
        case .alpha: m.alpha
        case .beta: m.beta
        case .winRate: m.winRate
        case .profitFactor: m.profitFactor
        case .tradeCount: Double(m.tradeCount)
        case .exposure: m.exposure
        case .finalEquity: finalEquity
        }
    }

    /// Whether `a` ranks before `b`; NaN ranks last.
    public func ranksBefore(_ a: Double, _ b: Double) -> Bool {
        if a.isNaN { return false }
        if b.isNaN { return true }
        return higherIsBetter ? a > b : a < b
    }
}
