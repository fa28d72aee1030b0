import BacktestCore

/// The status that ends every call: OK, or an error with its code, message and field path.
/// The wire twin of `ErrorStatus`; converts to and from `BacktestError`.
package struct CallStatus: Sendable, Hashable, CustomStringConvertible {
    package var code: StatusCode
    package var message: String
    package var field: String

    package init(code: StatusCode, message: String = "", field: String = "") {
        self.code = code
        self.message = message
        self.field = field
    }

    package init(_ error: BacktestError) {
        self.init(code: error.code, message: error.message, field: error.field)
    }

    package static let ok = CallStatus(code: .ok)

    /// nil for OK.
    package var error: BacktestError? {
        code == .ok ? nil : BacktestError(code, message, field: field)
    }

    package var description: String {
        error?.description ?? "OK"
    }
}

/// The protocol's messages as Swift values: decoded from a frame payload, encoded into one.
package protocol WireMessage: Sendable {
    /// Decodes a payload. Throws `BacktestError`: INVALID_ARGUMENT for malformed bytes or values
    /// (with the field path), RESOURCE_EXHAUSTED when decoding would exceed the memory budget.
    static func decode(_ bytes: ByteBuffer, limits: DecodeLimits) throws -> Self
    /// Appends the serialized message to `buffer`.
    func encode(into buffer: inout ByteBuffer)
}

import NIOCore

extension WireMessage {
    package static func decode(_ bytes: ByteBuffer) throws -> Self {
        try decode(bytes, limits: .default)
    }

    /// The serialized message in a new buffer.
    package func encoded(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 64)
        encode(into: &buffer)
        return buffer
    }
}
