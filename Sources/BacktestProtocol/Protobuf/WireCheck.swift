import BacktestCore
// protobuf-c.h reaches Swift through both C modules; which one owns its enum constants depends
// on build order, so import both.
import CBacktestProto
import CProtobufC

/// Walks protobuf wire bytes with the message's descriptor before protobuf-c unpacks them, and
/// rejects what protobuf-c must not see or cannot report:
///
/// - bytes that are not well-formed wire data (so protobuf-c only sees plausible input);
/// - nesting deeper than the stack bound (protobuf-c recurses on the C stack per sub-message);
/// - conditions nested deeper than `maxConditionDepth` levels (a position's `entry` or `exit` is
///   level 1; each `all`, `any` or `not` inside adds one), counted on `Condition` messages only,
///   so the documented limit is exactly the enforced one whatever the path to the strategy;
/// - in requests (`checkStrings`), string fields that are not UTF-8 or hold a control character
///   (U+0000-U+001F, U+007F-U+009F): protobuf-c hands strings over NUL-terminated, so
///   "AAPL\0../../x" would read as "AAPL" after unpacking; here the real bytes are checked.
///
/// Errors name the field by its proto path from the message walked ("run_backtest.strategy.
/// positions[0].ticker"), built only when an error is found. Faults inside one element of
/// `isolated` (RunBatch's `run_batch.variants[i]`) are that element's alone: they are returned
/// (as `IsolatedFault`s) instead of thrown, so the batch's other variants still run.
struct WireCheck {
    /// PROTOBUF_C_TYPE_STRING and PROTOBUF_C_TYPE_MESSAGE: their ordinals in protobuf-c.h's
    /// ProtobufCType. Spelled as numbers because the constants do not import in the sanitizer
    /// (fuzzer) build of this toolchain.
    private static let stringType: UInt32 = 14
    private static let messageType: UInt32 = 16
    /// PROTOBUF_C_LABEL_REPEATED.
    private static let repeatedLabel: UInt32 = 2

    /// A bad string: safe for protobuf-c to unpack (unlike nesting), so an isolated element with
    /// one is not blanked.
    private struct StringFault: Error {
        let error: BacktestError
    }

    /// A fault in one isolated element: its index, the error, and where its payload lies in the
    /// bytes walked (so a too-deep element can be blanked before protobuf-c sees it).
    struct IsolatedFault {
        let index: Int
        let error: BacktestError
        let payload: Range<Int>
        /// The fault must not reach protobuf-c (nesting): its payload is blanked.
        let mustBlank: Bool
    }

    let maxConditionDepth: Int
    let checkStrings: Bool
    let what: String
    /// The `Condition` descriptor, whose nesting is counted.
    let condition: UnsafePointer<ProtobufCMessageDescriptor>?
    /// (outer field, inner repeated field) whose elements' faults are isolated:
    /// ("run_batch", "variants").
    let isolated: (outer: String, inner: String)?

    /// The deepest wire nesting let through to protobuf-c: room for `maxConditionDepth` levels
    /// of `all`/`any` (two messages per level: Condition, ConditionList) below the longest path
    /// to a condition, and the operand below the last one.
    var maxWireDepth: Int { 2 * maxConditionDepth + 16 }

    private struct Segment {
        let name: UnsafePointer<CChar>
        let index: Int?
    }

    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        var position: Int
        var end: Int

        mutating func varint() -> UInt64? {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while position < end, shift < 64 {
                let byte = bytes[position]
                position += 1
                value |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
            }
            return nil
        }

        mutating func skip(_ count: UInt64) -> Bool {
            guard count <= UInt64(end - position) else { return false }
            position += Int(count)
            return true
        }
    }

    /// Walks `bytes` as a `descriptor` message. Throws INVALID_ARGUMENT naming the field;
    /// returns the faults of isolated elements.
    func check(_ bytes: UnsafeRawBufferPointer, descriptor: UnsafePointer<ProtobufCMessageDescriptor>) throws -> [IsolatedFault] {
        var reader = Reader(bytes: bytes, position: 0, end: bytes.count)
        var segments: [Segment] = []
        var faults: [IsolatedFault] = []
        do {
            try walk(&reader, descriptor: descriptor, depth: 0, conditions: 0, segments: &segments, faults: &faults)
        } catch let fault as StringFault {
            throw fault.error
        }
        return faults
    }

    private func path(_ segments: [Segment]) -> String {
        var path = FieldPath("")
        for segment in segments {
            let name = String(cString: segment.name)
            path = segment.index.map { path.child(name, index: $0) } ?? path.child(name)
        }
        return path.description
    }

    private func walk(
        _ reader: inout Reader, descriptor: UnsafePointer<ProtobufCMessageDescriptor>, depth: Int, conditions: Int,
        segments: inout [Segment], faults: inout [IsolatedFault]
    ) throws {
        // Built only when thrown: this runs for every message of the request (40,000 positions
        // are some 360,000 messages).
        func malformed() -> BacktestError { BacktestError.invalidArgument("\(what) is not a valid protobuf message") }
        guard depth <= maxWireDepth else {
            throw BacktestError.invalidArgument("\(what) nests messages deeper than \(maxWireDepth) levels", field: path(segments))
        }
        var counts: [UInt32: Int] = [:]
        // A large request is checked on the compute threads: let it be time-sliced.
        CancellationFlag.yieldPoint()
        while reader.position < reader.end {
            guard let tag = reader.varint(), tag >> 3 != 0, tag >> 3 <= UInt64(UInt32.max) else { throw malformed() }
            switch tag & 7 {
            case 0: guard reader.varint() != nil else { throw malformed() }
            case 1: guard reader.skip(8) else { throw malformed() }
            case 5: guard reader.skip(4) else { throw malformed() }
            case 2:
                guard let length = reader.varint(), length <= UInt64(reader.end - reader.position) else { throw malformed() }
                let start = reader.position
                let end = start + Int(length)
                if let field = protobuf_c_message_descriptor_get_field(descriptor, UInt32(tag >> 3)) {
                    let f = field.pointee
                    let isMessage = f.type.rawValue == Self.messageType && f.descriptor != nil
                    let isString = checkStrings && f.type.rawValue == Self.stringType
                    if isMessage || isString {
                        var index: Int?
                        if f.label.rawValue == Self.repeatedLabel {
                            index = counts[f.id, default: 0]
                            counts[f.id] = index! + 1
                        }
                        segments.append(Segment(name: f.name, index: index))
                        defer { segments.removeLast() }
                        if isString {
                            try checkString(UnsafeRawBufferPointer(rebasing: reader.bytes[start..<end]), segments: segments)
                        } else {
                            let nested = f.descriptor!.assumingMemoryBound(to: ProtobufCMessageDescriptor.self)
                            var inner = Reader(bytes: reader.bytes, position: start, end: end)
                            if let isolated, let index, segments.count == 2,
                               String(cString: segments[0].name) == isolated.outer, String(cString: f.name) == isolated.inner {
                                // One variant: its faults are its own.
                                do {
                                    try walk(&inner, descriptor: nested, depth: depth + 1, conditions: conditions,
                                             segments: &segments, faults: &faults)
                                } catch let fault as StringFault {
                                    faults.append(IsolatedFault(index: index, error: fault.error, payload: start..<end, mustBlank: false))
                                } catch let error as BacktestError where !error.field.isEmpty {
                                    // Nesting: protobuf-c must not see it.
                                    faults.append(IsolatedFault(index: index, error: error, payload: start..<end, mustBlank: true))
                                }
                            } else {
                                let isCondition = nested == condition
                                if isCondition && conditions + 1 > maxConditionDepth {
                                    throw BacktestError.invalidArgument(
                                        "conditions nest deeper than \(maxConditionDepth) levels (a position's entry or exit is level 1; each all, any or not inside adds one)",
                                        field: path(segments))
                                }
                                try walk(&inner, descriptor: nested, depth: depth + 1, conditions: conditions + (isCondition ? 1 : 0),
                                         segments: &segments, faults: &faults)
                            }
                        }
                    }
                }
                reader.position = end
            default: throw malformed()  // groups (3, 4) are not proto3; 6 and 7 do not exist
            }
        }
    }

    /// A request string: UTF-8 without control characters.
    private func checkString(_ bytes: UnsafeRawBufferPointer, segments: [Segment]) throws {
        var asciiOnly = true
        for (offset, byte) in bytes.enumerated() {
            if byte < 0x20 || byte == 0x7F {
                throw StringFault(error: controlCharacter(UInt32(byte), at: offset, bytes: bytes, segments: segments))
            }
            if byte >= 0x80 { asciiOnly = false }
        }
        guard !asciiOnly else { return }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw StringFault(error: BacktestError.invalidArgument(
                "\(String(cString: segments[segments.count - 1].name)) is not valid UTF-8; strings in a request are UTF-8 text without control characters", field: path(segments)))
        }
        var offset = 0
        for scalar in text.unicodeScalars {
            if (0x80...0x9F).contains(scalar.value) {
                throw StringFault(error: controlCharacter(scalar.value, at: offset, bytes: bytes, segments: segments))
            }
            offset += UTF8.width(scalar)
        }
    }

    private func controlCharacter(_ value: UInt32, at offset: Int, bytes: UnsafeRawBufferPointer, segments: [Segment]) -> BacktestError {
        let hex = String(value, radix: 16, uppercase: true)
        let code = "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
        let text = String(decoding: bytes.prefix(64), as: UTF8.self)
        return BacktestError.invalidArgument(
            "\(String(cString: segments[segments.count - 1].name)) contains the control character \(code) at byte \(offset) (\(quotedInput(text))); strings in a request may not contain control characters (U+0000-U+001F, U+007F-U+009F)",
            field: path(segments))
    }

    /// `bytes` with each fault's payload that must not reach protobuf-c replaced by one unknown
    /// field of the same size (field 536870911, the highest number, which no message uses), so
    /// every length around it stays right and the element decodes as an empty message.
    static func blanking(_ bytes: UnsafeRawBufferPointer, _ faults: [IsolatedFault]) -> [UInt8]? {
        var copy = [UInt8](bytes)
        for fault in faults where fault.mustBlank {
            let size = fault.payload.count
            let tag = varint(UInt64(536_870_911) << 3 | 2)
            var filler: [UInt8]?
            for lengthSize in 1...5 where size >= tag.count + lengthSize {
                let content = size - tag.count - lengthSize
                if varint(UInt64(content)).count == lengthSize {
                    filler = tag + varint(UInt64(content)) + [UInt8](repeating: 0, count: content)
                    break
                }
            }
            guard let filler else { return nil }
            copy.replaceSubrange(fault.payload, with: filler)
        }
        return copy
    }

    private static func varint(_ value: UInt64) -> [UInt8] {
        var value = value
        var out: [UInt8] = []
        repeat {
            var byte = UInt8(value & 0x7F)
            value >>= 7
            if value != 0 { byte |= 0x80 }
            out.append(byte)
        } while value != 0
        return out
    }
}
