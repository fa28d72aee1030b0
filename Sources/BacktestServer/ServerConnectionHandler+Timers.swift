import BacktestProtocol
import NIOCore

// The connection's timers: frame assembly (slowloris), idle, keepalive. All run on the loop.
extension ServerConnectionHandler {
    func armFrameTimerIfPartial() {
        guard phase != .closed, let context else { return }
        if processor.unprocessedBytes == 0 {
            frameTimer?.cancel()
            frameTimer = nil
        } else if frameTimer == nil, phase != .awaitingPreface {
            frameTimer = context.eventLoop.assumeIsolated().scheduleTask(in: configuration.frameTimeout) { [self] in
                frameTimer = nil
                failConnection(CallStatus(code: .deadlineExceeded,
                    message: "a frame did not arrive whole within \(configuration.frameTimeout.nanoseconds / 1_000_000) ms"))
            }
        }
    }

    /// How long a connection may sit without a call. Until its first call it is at least the
    /// handshake timeout: a client that just connected has not had the chance to be idle, and a
    /// short idle timeout must not refuse the call it is about to send (a busy client can take a
    /// while between SETTINGS and its first REQUEST).
    var idlePeriod: TimeAmount {
        hasReceivedACall ? configuration.idleTimeout : max(configuration.idleTimeout, configuration.handshakeTimeout)
    }

    func armIdleTimer() {
        guard let context else { return }
        // Never in the past: while a long call runs, check again one idle period from now.
        let deadline = max(lastActivity + idlePeriod, .now() + .milliseconds(1))
        idleTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            guard phase == .open || phase == .draining else { return }
            if streams.isEmpty, NIODeadline.now() >= lastActivity + idlePeriod {
                failConnection(CallStatus(code: .ok, message: "idle timeout"))
            } else {
                if !streams.isEmpty { lastActivity = .now() }
                armIdleTimer()
            }
        }
    }

    func armKeepaliveIfNeeded() {
        guard keepaliveTimer == nil, configuration.keepaliveInterval > .zero, let context else { return }
        keepaliveTimer = context.eventLoop.assumeIsolated().scheduleTask(in: configuration.keepaliveInterval) { [self] in
            keepaliveTimer = nil
            guard phase == .open || phase == .draining, !streams.isEmpty else { return }
            if unansweredPing != nil {
                return failConnection(CallStatus(code: .unavailable, message: "keepalive PING not answered"))
            }
            let opaque = UInt64.random(in: .min ... .max)
            unansweredPing = opaque
            write(Frame(type: .ping, streamID: 0, payload: PingMessage(opaque: opaque).encoded()))
            armKeepaliveIfNeeded()
        }
    }
}
