import BacktestCore
import CProtobufC

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A protobuf-c allocator that refuses to hand out more than `limit` bytes in total.
///
/// protobuf-c expands a message while unpacking: a 4-byte packed repeated field becomes an 8-byte
/// slot, an empty sub-message becomes a struct of dozens of bytes, and so on; a small hostile
/// payload can ask for many times its size. With a budget, `protobuf_c_message_unpack` fails
/// cleanly (it returns NULL and frees what it had) instead of letting one request eat the heap.
///
/// Each block carries a 16-byte header with its size so that `free` can give the budget back.
/// Not thread-safe: one budget serves one decode on one thread.
final class DecodeBudget {
    let limit: Int
    private(set) var used = 0
    private(set) var exceeded = false

    init(limit: Int) { self.limit = limit }

    private static let headerSize = 16

    fileprivate func allocate(_ size: Int) -> UnsafeMutableRawPointer? {
        guard size >= 0, size <= limit - used - DecodeBudget.headerSize else {
            exceeded = true
            return nil
        }
        let total = size + DecodeBudget.headerSize
        guard let block = malloc(total) else { return nil }
        used += total
        block.storeBytes(of: total, as: Int.self)
        return block + DecodeBudget.headerSize
    }

    fileprivate func release(_ pointer: UnsafeMutableRawPointer?) {
        guard let pointer else { return }
        let block = pointer - DecodeBudget.headerSize
        used -= block.load(as: Int.self)
        free(block)
    }

    /// Runs `body` with a `ProtobufCAllocator` drawing from this budget.
    func withAllocator<R>(_ body: (UnsafeMutablePointer<ProtobufCAllocator>) throws -> R) rethrows -> R {
        var allocator = ProtobufCAllocator(
            alloc: { data, size in
                guard let data else { return nil }
                return Unmanaged<DecodeBudget>.fromOpaque(data).takeUnretainedValue().allocate(size)
            },
            free: { data, pointer in
                guard let data else { return }
                Unmanaged<DecodeBudget>.fromOpaque(data).takeUnretainedValue().release(pointer)
            },
            allocator_data: Unmanaged.passUnretained(self).toOpaque())
        return try withExtendedLifetime(self) { try body(&allocator) }
    }
}
