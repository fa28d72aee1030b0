import NIOConcurrencyHelpers
import NIOCore

/// A REQUEST's payload as received, with the part of the server's inbound budget it holds
/// (`InboundMemoryBudget`). The call reads its header (`peek`), takes the bytes to decode them
/// (`take`), and lets go of both once they are decoded (`release`), so a payload's memory is
/// given back when its call no longer needs it rather than when the call ends.
final class ReceivedPayload: Sendable {
    /// The payload's size in bytes.
    let size: Int
    private let state: NIOLockedValueBox<(payload: ByteBuffer?, hold: InboundMemoryBudget.Hold?)>

    init(_ payload: ByteBuffer, hold: InboundMemoryBudget.Hold?) {
        size = payload.readableBytes
        state = NIOLockedValueBox((payload, hold))
    }

    /// `body` applied to the payload; nil once it was taken.
    func peek<Result>(_ body: (ByteBuffer) -> Result) -> Result? {
        state.withLockedValue { state in state.payload.map(body) }
    }

    /// The payload, once (nil after): the caller holds the only reference left.
    func take() -> ByteBuffer? {
        state.withLockedValue { state in
            defer { state.payload = nil }
            return state.payload
        }
    }

    /// Drops the payload, if not taken, and gives back its reservation (once).
    func release() {
        let hold = state.withLockedValue { state -> InboundMemoryBudget.Hold? in
            state.payload = nil
            defer { state.hold = nil }
            return state.hold
        }
        hold?.release()
    }
}
