import CProtobufC

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Memory for building C structs for one encode. Ownership is explicit: every allocation made
/// through the arena is freed by `releaseAll()`, called once the message has been packed; nothing
/// the arena hands out may outlive it.
final class ScratchArena {
    private var blocks: [UnsafeMutableRawPointer] = []

    /// An initialised (defaults set) message struct.
    func message<CMessage>(_ type: ProtobufMessageType<CMessage>) -> UnsafeMutablePointer<CMessage> {
        let pointer = raw(MemoryLayout<CMessage>.size).bindMemory(to: CMessage.self, capacity: 1)
        type.initialize(pointer)
        return pointer
    }

    /// A NUL-terminated copy of `string`. (An interior NUL would truncate it; none of our strings
    /// carry one.)
    func cString(_ string: String) -> UnsafeMutablePointer<CChar> {
        let utf8 = Array(string.utf8)
        let pointer = raw(utf8.count + 1).bindMemory(to: CChar.self, capacity: utf8.count + 1)
        for (offset, byte) in utf8.enumerated() { pointer[offset] = CChar(bitPattern: byte) }
        pointer[utf8.count] = 0
        return pointer
    }

    /// A C array holding `values` (nil for an empty array, as protobuf-c expects).
    func array<T>(_ values: [T]) -> UnsafeMutablePointer<T>? {
        guard !values.isEmpty else { return nil }
        let pointer = raw(MemoryLayout<T>.stride * values.count).bindMemory(to: T.self, capacity: values.count)
        pointer.initialize(from: values, count: values.count)
        return pointer
    }

    /// A C array of pointers to messages built by `build`, one per element.
    func messages<Element, CMessage>(
        _ elements: [Element], _ build: (Element) -> UnsafeMutablePointer<CMessage>
    ) -> UnsafeMutablePointer<UnsafeMutablePointer<CMessage>?>? {
        array(elements.map { Optional(build($0)) })
    }

    /// A C array of C strings.
    func strings(_ values: [String]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? {
        array(values.map { Optional(cString($0)) })
    }

    private func raw(_ size: Int) -> UnsafeMutableRawPointer {
        guard let block = calloc(1, max(size, 1)) else { fatalError("out of memory while encoding a message") }
        blocks.append(block)
        return block
    }

    func releaseAll() {
        for block in blocks { free(block) }
        blocks.removeAll()
    }

    deinit { releaseAll() }
}
