import BacktestCore
import NIOCore
import NIOHTTP1

/// Reads one HTTP/1.1 request at a time and writes the answer `FakeAlpacaServer` plans, after
/// its gate (held responses) and no earlier than its latency after the request arrived; a
/// stall writes nothing.
final class FakeAlpacaHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let server: FakeAlpacaServer
    private var head: HTTPRequestHead?

    init(server: FakeAlpacaServer) {
        self.server = server
    }

    func channelActive(context: ChannelHandlerContext) {
        server.connectionOpened()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body:
            break
        case .end:
            guard let head else { return }
            self.head = nil
            // Latency counts from the request's arrival, like a vendor's response time: the
            // time spent building the body is part of it, not added to it.
            let arrived = NIODeadline.now()
            let plan = server.plan(uri: head.uri, headers: head.headers, on: context.eventLoop)
            guard let gate = plan.gate else { return }  // stalled: never answer
            let loop = context.eventLoop.assumeIsolated()
            gate.assumeIsolated().whenSuccess {
                let due = arrived + .nanoseconds(plan.latency.wholeNanoseconds)
                if due > .now() {
                    loop.scheduleTask(deadline: due) {
                        self.write(plan, keepAlive: head.isKeepAlive, context: context)
                    }
                } else {
                    self.write(plan, keepAlive: head.isKeepAlive, context: context)
                }
            }
        }
    }

    private func write(_ plan: FakeAlpacaServer.Plan, keepAlive: Bool, context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: plan.body.hasPrefix("{") ? "application/json; charset=UTF-8" : "text/plain")
        headers.add(name: "Content-Length", value: String(plan.body.utf8.count))
        headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        for (name, value) in plan.headers { headers.add(name: name, value: value) }
        let status = HTTPResponseStatus(statusCode: plan.status)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: plan.body)))), promise: nil)
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            done.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }
}

extension HTTPHeaders: HTTPHeadersLike {
    func first(_ name: String) -> String? {
        self[name].first
    }
}
