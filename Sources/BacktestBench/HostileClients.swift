import BacktestCore
import BacktestModel
import BacktestProtocol
import BacktestRawClient
import Foundation
import NIOCore

/// One hostile or careless input of issue 12, sent over a raw connection (BacktestRawClient's `RawConnection`)
/// written from PROTOCOL.md, as `backtest-bench loadtest --hostile N` runs them beside the normal
/// users.
package enum HostileCase: String, CaseIterable, Sendable, Codable {
    /// GetServerInfo whose `header.request_id` fills the frame to just inside the frame limit.
    case hugeRequestID = "huge request_id"
    /// A heavy RunBacktest (`HostileClients.Options.heavyPositions` positions), CANCEL after
    /// 200 ms, then a GetServerInfo on the same connection.
    case heavyThenCancel = "heavy backtest, CANCEL"
    /// A heavy RunBacktest with `timeout_ms` 300.
    case heavyDeadline = "heavy backtest, deadline"
    /// A heavy RunBacktest, then the socket closed after 200 ms.
    case heavyDisconnect = "heavy backtest, disconnect"
    /// GetServerInfo requests of 1-3 KB (a long request_id) written back to back, the bytes
    /// re-chunked into 4 KiB pieces every 10 ms, for up to 12 s; every one must be answered.
    case rechunkedWrites = "re-chunked slow writes"
    /// A position ticker "AAPL\0../../x".
    case controlCharacters = "control characters"
    /// A strategy name holding a newline and a fake log line.
    case forgedLogName = "forged-log name"
    /// A 3 MB strategy name.
    case hugeName = "3 MB name"
    /// A 4 MB ticker.
    case hugeTicker = "4 MB ticker"
    /// An entry condition of 60 nested `not`.
    case deepNesting = "deep nesting"
    /// A batch of 3 whose variant 1 has an unknown comparison op (99), found while decoding.
    case undecodableVariant = "batch with an undecodable variant"
    /// A frame header announcing 1 KiB, then one byte every 500 ms (the frame timeout must end it).
    case slowloris = "slowloris"
    /// An HTTP request instead of the preface.
    case badPreface = "bad preface"
    /// `HostileClients.Options.stalledFrameConnections` (20) connections each send all but the
    /// last 10 bytes of a frame as large as the limit allows, then stall (the tester's inbound
    /// flood: 100 of them took the server from 313 to 730 MB). The server reads what its inbound budget holds
    /// and leaves the rest unread, and closes a stalled one holding room others wait for after
    /// `--inbound-stall-ms`; the case's own connection reports what it saw within 12 s.
    case stalledLargeFrames = "stalled 4 MiB frames x20"

    /// The outcomes a server that handles the case correctly gives (issue 12): anything else is
    /// flagged in the report. Outcomes are status names ("INVALID_ARGUMENT"), "GOAWAY <status>",
    /// "closed", "cancelled", "disconnected" or "no answer in N s"; a long error message gets
    /// " (message of N bytes)" appended (messages must echo at most a short prefix).
    package var expected: Set<String> {
        switch self {
        case .hugeRequestID: ["RESOURCE_EXHAUSTED", "INVALID_ARGUMENT"]  // a bounded id, never silence
        case .heavyThenCancel: ["cancelled"]  // no RESPONSE for the call; the connection answers on
        case .heavyDeadline: ["DEADLINE_EXCEEDED"]
        case .heavyDisconnect: ["disconnected"]
        case .rechunkedWrites: ["OK"]  // every request answered; no GOAWAY
        case .controlCharacters: ["INVALID_ARGUMENT"]
        case .forgedLogName: ["OK", "INVALID_ARGUMENT"]  // either, but the log line is escaped
        case .hugeName: ["OK", "INVALID_ARGUMENT"]  // either, but the log line is bounded
        case .hugeTicker: ["INVALID_ARGUMENT"]  // with a short message
        case .deepNesting: ["INVALID_ARGUMENT"]
        case .undecodableVariant: ["OK, 1 variant failed"]  // one bad variant fails only itself
        case .slowloris: ["GOAWAY DEADLINE_EXCEEDED"]
        case .badPreface: ["closed"]
        // Read, then closed for stalling while the others wait for room (or timed out as a
        // slowloris); or left unread (and not closed) while the budget is taken.
        case .stalledLargeFrames: ["GOAWAY RESOURCE_EXHAUSTED", "GOAWAY DEADLINE_EXCEEDED", "not read"]
        }
    }

    /// Outcomes that say only that the run ended while the case was under way.
    package static let cutShort = "cut short by the end of the run"
}

/// N hostile connections (`--hostile N`), each cycling through every `HostileCase` in a bounded
/// loop until the run's deadline, beside the normal users; counts each case's outcomes.
package struct HostileClients: Sendable {
    package struct Options: Sendable {
        package var connections = 5
        /// Positions of the heavy backtest (1 year, one SMA crossover each over the workload's
        /// tickers). Issue 12 used 100,000 (about 20 s of CPU before the engine was made linear);
        /// 40,000 keeps the request near 2 MB.
        package var heavyPositions = 40_000
        /// Pause between two cases of one connection.
        package var pause: Duration = .milliseconds(100)
        /// The cases the connections cycle through (all by default; tests play one).
        package var cases = HostileCase.allCases
        /// Whether each connection ends with a heavy backtest abandoned as it stops.
        package var partingShot = true
        /// Connections of one `stalledLargeFrames` case, its own among them.
        package var stalledFrameConnections = 20
        /// Cases each connection plays at most (nil: until the deadline).
        package var casesPerConnection: Int?
        package init() {}
    }

    package let options: Options
    package let host: String
    package let port: Int

    package init(options: Options, host: String, port: Int) {
        self.options = options
        self.host = host
        self.port = port
    }

    /// Runs the connections until `deadline`; a case under way then is cut short (its
    /// connection closed), and each connection ends by sending one more heavy backtest and
    /// closing its socket 200 ms later (counted under "heavy backtest, disconnect"). Returns when
    /// every connection has stopped.
    package func run(until deadline: ContinuousClock.Instant) async -> HostileTally {
        // Encoded once: a 40,000-position request takes tens of milliseconds to encode, and this
        // process's cooperative threads also serve the normal users whose latency is measured.
        let payloads = Payloads(heavyPositions: options.heavyPositions)
        return await withTaskGroup(of: HostileTally.self) { group in
            for worker in 0..<options.connections {
                group.addTask {
                    var tally = HostileTally()
                    var next = worker  // connections start on different cases
                    var played = 0
                    while ContinuousClock.now < deadline, !Task.isCancelled, played < (options.casesPerConnection ?? .max) {
                        played += 1
                        let kind = options.cases[next % options.cases.count]
                        next += 1
                        let outcome = await self.play(kind, payloads: payloads, deadline: deadline)
                        tally.record(kind, outcome)
                        try? await Task.sleep(for: options.pause)
                    }
                    // A parting shot: a heavy backtest abandoned as the connection stops, so the
                    // server's CPU after the clients stop shows whether abandoned work goes on.
                    if options.partingShot, !Task.isCancelled {
                        tally.record(.heavyDisconnect, await self.play(.heavyDisconnect, payloads: payloads, deadline: .now + .seconds(5)))
                    }
                    return tally
                }
            }
            var total = HostileTally()
            for await tally in group { total.merge(tally) }
            return total
        }
    }

    // MARK: The cases

    private func play(_ kind: HostileCase, payloads: Payloads, deadline: ContinuousClock.Instant) async -> String {
        // Each case on a connection of its own, ended when the run ends.
        let connection: RawConnection
        let settings: ConnectionSettings?
        do {
            if kind == .badPreface {
                connection = try await RawConnection(host: host, port: port, connectTimeout: .seconds(5))
                settings = nil
            } else {
                (connection, settings) = try await RawConnection.handshake(host: host, port: port, timeout: .seconds(5))
            }
        } catch {
            return "connect failed"
        }
        let outcome = await withTaskGroup(of: String?.self) { group in
            group.addTask {
                await self.play(kind, on: connection, settings: settings, payloads: payloads)
            }
            group.addTask {
                try? await Task.sleep(until: deadline)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            await connection.close()
            return first ?? HostileCase.cutShort
        }
        await connection.close()
        return outcome
    }

    private func play(
        _ kind: HostileCase, on connection: RawConnection, settings: ConnectionSettings?, payloads: Payloads
    ) async -> String {
        let maxFrame = Int(settings?.maxFramePayload ?? UInt32(Wire.defaultMaxFramePayload))
        do {
            switch kind {
            case .hugeRequestID:
                try await connection.sendRequest(1, maxFrame == payloads.hugeRequestIDFrame ? payloads.hugeRequestID : Self.serverInfo(requestIDFilling: maxFrame).encoded())
                return await Self.answer(on: connection, stream: 1, within: .seconds(10))
            case .heavyThenCancel:
                try await connection.sendRequest(1, payloads.backtest)
                if case .frame(let frame)? = await connection.next(timeout: .milliseconds(200)) {
                    return "answered before CANCEL: " + Self.describe(frame)
                }
                try await connection.send(Frame(type: .cancel, streamID: 1, payload: CancelMessage(reason: "hostile client").encoded()))
                try await connection.sendRequest(3, CallRequest(method: .serverInfo))
                while true {
                    guard case .frame(let frame)? = await connection.next(timeout: .seconds(10)) else {
                        return "no answer after CANCEL"
                    }
                    if frame.streamID == 1, frame.type == .response { return "RESPONSE after CANCEL: " + Self.describe(frame) }
                    if frame.streamID == 3, frame.type == .response {
                        let status = Self.describe(frame)
                        return status == "OK" ? "cancelled" : "GetServerInfo after CANCEL: \(status)"
                    }
                    if frame.type == .goAway { return Self.describe(frame) }
                }
            case .heavyDeadline:
                try await connection.sendRequest(1, payloads.backtestWithDeadline)
                return await Self.answer(on: connection, stream: 1, within: .seconds(30))
            case .heavyDisconnect:
                try await connection.sendRequest(1, payloads.backtest)
                try await Task.sleep(for: .milliseconds(200))
                await connection.close()
                return "disconnected"
            case .rechunkedWrites:
                return try await rechunked(on: connection, maxInFlight: Int(settings?.maxConcurrentStreams ?? 100))
            case .controlCharacters:
                // A control character other than NUL: the Swift model's protobuf-c encoder ends a
                // string at its first NUL, so a NUL cannot be sent through it (tests send NUL
                // bytes on raw sockets: FieldPathSchemeTests).
                return try await single(Self.strategy(name: "control", ticker: "AAPL\u{1}../../x"), on: connection)
            case .forgedLogName:
                let name = "hostile\n2026-01-01T00:00:00+0000 critical backtestd : [forged] operator password reset"
                return try await single(Self.strategy(name: name, ticker: "AAPL"), on: connection)
            case .hugeName:
                try await connection.sendRequest(1, payloads.hugeName)
                return await Self.answer(on: connection, stream: 1, within: .seconds(30))
            case .hugeTicker:
                try await connection.sendRequest(1, payloads.hugeTicker)
                return await Self.answer(on: connection, stream: 1, within: .seconds(30))
            case .deepNesting:
                var strategy = Self.strategy(name: "deep", ticker: "AAPL")
                for _ in 0..<60 { strategy.positions[0].entry = .not(strategy.positions[0].entry) }
                return try await single(strategy, on: connection)
            case .undecodableVariant:
                try await connection.send(Frame(type: .request, streamID: 1, payload: Self.batchWithUndecodableVariant()))
                return await Self.answer(on: connection, stream: 1, within: .seconds(30))
            case .slowloris:
                var header = ByteBuffer()
                header.writeInteger(UInt32(1024))
                header.writeInteger(UInt32(1))
                header.writeInteger(FrameType.request.rawValue)
                header.writeInteger(UInt8(0))
                try await connection.send(header)
                let started = ContinuousClock.now
                while ContinuousClock.now - started < .seconds(20) {
                    try await connection.send(ByteBuffer(bytes: [0]))
                    switch await connection.next(timeout: .milliseconds(500)) {
                    case .frame(let frame)?: return Self.describe(frame)
                    case .closed?: return "closed"
                    case nil: continue
                    }
                }
                return "still open after 20 s"
            case .stalledLargeFrames:
                let maxFrame = Int(settings?.maxFramePayload ?? UInt32(Wire.defaultMaxFramePayload))
                return await stalledLargeFrames(on: connection, maxFrame: maxFrame, payloads: payloads)
            case .badPreface:
                try await connection.send(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: backtestd\r\n\r\n"))
                switch await connection.next(timeout: .seconds(10)) {
                case .frame(let frame)?: return Self.describe(frame)
                case .closed?: return "closed"
                case nil: return "still open after 10 s"
                }
            }
        } catch {
            return "closed"  // a write failed: the server closed the connection
        }
    }

    /// The `stalledLargeFrames` case: every connection sends a frame header of `maxFrame` less 10
    /// bytes of payload and all but the last 10 of them (its send waits while the server does
    /// not read it); the outcome is what `connection` sees within 12 s. Every connection is
    /// closed before this returns, which ends the sends still waiting.
    private func stalledLargeFrames(on connection: RawConnection, maxFrame: Int, payloads: Payloads) async -> String {
        let length = min(maxFrame, payloads.stalledFrameBytes.readableBytes) - 10
        var header = ByteBuffer()
        header.writeMultipleIntegers(UInt32(length), UInt32(1), FrameType.request.rawValue, UInt8(0), endianness: .big)
        let start = header
        let body = payloads.stalledFrameBytes.getSlice(at: payloads.stalledFrameBytes.readerIndex, length: length - 10)!
        // This connection's header first: it is in line for the budget ahead of its siblings.
        try? await connection.send(start)
        var connections = [connection]
        for _ in 1..<max(1, options.stalledFrameConnections) {
            // A small send buffer: with the system's (which grows to 4 MiB), the 20 writes copied
            // up to 80 MB into the kernel on this process's event loops, which also carry the
            // users' calls, and their latency measured here spiked past 100 ms.
            guard let (other, _) = try? await RawConnection.handshake(host: host, port: port, timeout: .seconds(5), sendBuffer: 64 << 10)
            else { break }
            connections.append(other)
        }
        let all = connections
        return await withTaskGroup(of: String?.self) { group in
            for each in all {
                group.addTask {
                    if each !== connection { try? await each.send(start) }
                    try? await each.send(body)
                    return nil
                }
            }
            group.addTask {
                switch await connection.next(timeout: .seconds(12)) {
                case .frame(let frame)?: Self.describe(frame)
                case .closed?: "closed"
                case nil: "not read"
                }
            }
            var outcome = "closed"
            while let next = await group.next() {
                if let next {
                    outcome = next
                    break
                }
            }
            for each in all { await each.close() }
            return outcome
        }
    }

    private func single(_ strategy: Strategy, on connection: RawConnection) async throws -> String {
        try await connection.sendRequest(1, CallRequest(method: .runBacktest(BacktestRequest(strategy: strategy, settings: Self.settings))))
        return await Self.answer(on: connection, stream: 1, within: .seconds(30))
    }

    /// GetBatchStatus requests of 1-3 KB (an unknown batch: NOT_FOUND) written as one byte stream in 4 KiB pieces every 10 ms for
    /// 12 s, the answers read meanwhile: "OK" when every request was answered (NOT_FOUND). Like a correct
    /// client it holds new requests while `maxInFlight` (SETTINGS' max_concurrent_streams, at
    /// most 256) are unanswered, so only the frame timeout is on trial.
    private func rechunked(on connection: RawConnection, maxInFlight: Int) async throws -> String {
        let maxInFlight = max(1, min(maxInFlight, 256))
        var random = SystemRandomNumberGenerator()
        var pending = ByteBuffer()
        var nextStream: UInt32 = 1
        var sent = 0
        var answered = 0
        let started = ContinuousClock.now
        var nextWrite = started
        var writing = true
        while writing || answered < sent {
            if writing, ContinuousClock.now >= nextWrite {
                while pending.readableBytes < 4096, sent - answered < maxInFlight {
                    // 1-3 KB requests whose answers are cheap: GetBatchStatus of an unknown batch
                    // with a padded list of known indices (2 bytes each on the wire). Ids and
                    // names are bounded at 128-256 bytes (PROTOCOL.md), so they cannot pad.
                    let count = Int.random(in: 500...1500, using: &random)
                    let request = CallRequest(method: .batchStatus(batchID: "hostile-rechunked", knownIndices: Array(200..<(200 + count))))
                    FrameEncoder.write(Frame(type: .request, streamID: nextStream, payload: request.encoded()), into: &pending)
                    nextStream += 2
                    sent += 1
                }
                if let piece = pending.readSlice(length: min(4096, pending.readableBytes)), piece.readableBytes > 0 {
                    try await connection.send(piece)
                }
                nextWrite += .milliseconds(10)
                if ContinuousClock.now - started >= .seconds(12) {
                    // The rest of the last frame, so every request begun is whole and answered.
                    if pending.readableBytes > 0 { try await connection.send(pending) }
                    pending.clear()
                    writing = false
                }
            }
            let wait = writing ? max(nextWrite - ContinuousClock.now, .milliseconds(1)) : .seconds(10)
            switch await connection.next(timeout: wait) {
            case .frame(let frame)?:
                if frame.type == .response {
                    let status = Self.describe(frame)
                    guard status == "NOT_FOUND" else { return status }
                    answered += 1
                } else if frame.type == .goAway {
                    return Self.describe(frame)
                }
            case .closed?: return "closed"
            case nil: if !writing { return "no answer in 10 s" }
            }
        }
        return "OK"
    }

    // MARK: Reading answers

    /// The RESPONSE of `stream` ("OK, N variants failed" for a batch with failed variants), a
    /// GOAWAY, the close, or "no answer in N s".
    private static func answer(on connection: RawConnection, stream: UInt32, within limit: Duration) async -> String {
        let until = ContinuousClock.now + limit
        var failedVariants = 0
        while true {
            let left = until - ContinuousClock.now
            guard left > .zero, let event = await connection.next(timeout: left) else {
                return "no answer in \(limit.components.seconds) s"
            }
            guard case .frame(let frame) = event else { return "closed" }
            switch frame.type {
            case .data where frame.streamID == stream:
                if let update = try? ProgressUpdate.decode(frame.payload, limits: .default) {
                    failedVariants += update.results.filter { if case .failure = $0.detail { true } else { false } }.count
                }
            case .response where frame.streamID == stream:
                let status = describe(frame)
                guard failedVariants > 0, status == "OK" else { return status }
                return "OK, \(failedVariants) variant\(failedVariants == 1 ? "" : "s") failed"
            case .goAway:
                return describe(frame)
            default:
                continue
            }
        }
    }

    /// A RESPONSE's status ("INVALID_ARGUMENT", with " (message of N bytes)" when the message is
    /// over 1,000 bytes), or "GOAWAY <status>".
    static func describe(_ frame: Frame) -> String {
        if frame.type == .goAway {
            guard let goAway = try? GoAwayMessage.decode(frame.payload, limits: .default) else { return "GOAWAY (undecodable)" }
            return "GOAWAY \(goAway.status.code)"
        }
        guard frame.type == .response else { return "\(frame.type) frame" }
        guard let response = try? CallResponse.decode(frame.payload, limits: DecodeLimits(memoryBudget: 256 << 20)) else {
            return "undecodable RESPONSE"
        }
        let length = response.status.message.utf8.count
        return "\(response.status.code)" + (length > 1000 ? " (message of \(length) bytes)" : "")
    }

    // MARK: Requests

    /// The large requests, encoded once per run (`run(until:)`).
    struct Payloads: Sendable {
        /// RunBacktest of `heavyStrategy`, without and with `timeout_ms` 300.
        let backtest: ByteBuffer
        let backtestWithDeadline: ByteBuffer
        /// GetServerInfo whose request_id fills a frame of `hugeRequestIDFrame` bytes (the default).
        let hugeRequestID: ByteBuffer
        let hugeRequestIDFrame = Wire.defaultMaxFramePayload
        /// RunBacktest with a 3 MB strategy name and with a 4 MB ticker.
        let hugeName: ByteBuffer
        let hugeTicker: ByteBuffer
        /// The payload bytes of the `stalledLargeFrames` frames (a frame limit's worth, shared).
        let stalledFrameBytes = ByteBuffer(repeating: 0x5A, count: Wire.defaultMaxFramePayload)

        init(heavyPositions: Int) {
            let heavy = HostileClients.heavyStrategy(positions: heavyPositions)
            backtest = CallRequest(method: .runBacktest(BacktestRequest(strategy: heavy, settings: HostileClients.settings))).encoded()
            backtestWithDeadline = CallRequest(
                header: RequestHeader(timeoutMs: 300), method: .runBacktest(BacktestRequest(strategy: heavy, settings: HostileClients.settings)))
                .encoded()
            hugeRequestID = HostileClients.serverInfo(requestIDFilling: Wire.defaultMaxFramePayload).encoded()
            func single(_ strategy: Strategy) -> ByteBuffer {
                CallRequest(method: .runBacktest(BacktestRequest(strategy: strategy, settings: HostileClients.settings))).encoded()
            }
            hugeName = single(HostileClients.strategy(name: String(repeating: "N", count: 3_000_000), ticker: "AAPL"))
            hugeTicker = single(HostileClients.strategy(name: "huge ticker", ticker: String(repeating: "A", count: 4_000_000)))
        }
    }


    static let settings = Workload.settings(years: 1)

    static func strategy(name: String, ticker: String) -> Strategy {
        Strategy(name: name, positions: [
            Position(ticker: ticker, weight: 1, entry: .compare(lhs: Workload.sma(20), op: .greater, rhs: Workload.sma(50))),
        ])
    }

    /// `positions` positions over the workload's tickers, SMA(20) > SMA(50) each.
    static func heavyStrategy(positions: Int) -> Strategy {
        let count = max(1, positions)
        return Strategy(
            name: "hostile heavy x\(count)",
            positions: (0..<count).map { index in
                Position(ticker: Workload.tickers[index % Workload.tickers.count], weight: 1 / Double(count),
                         entry: .compare(lhs: Workload.sma(20), op: .greater, rhs: Workload.sma(50)))
            })
    }

    /// GetServerInfo with a request_id that makes the payload 30 bytes short of `maxFrame`.
    static func serverInfo(requestIDFilling maxFrame: Int) -> CallRequest {
        let target = maxFrame - 30
        var length = target - 16
        var request = CallRequest(header: RequestHeader(requestID: String(repeating: "i", count: length)), method: .serverInfo)
        length += target - request.encoded().readableBytes
        request = CallRequest(header: RequestHeader(requestID: String(repeating: "i", count: length)), method: .serverInfo)
        return request
    }

    /// A RunBatch payload of three variants whose second has the comparison op 99, which no
    /// version of the protocol defines: the Compare message's op field (tag 0x10) is patched in
    /// the encoded bytes, as a client with a newer or broken encoder would send it.
    static func batchWithUndecodableVariant() -> ByteBuffer {
        var variants = (0..<3).map { strategy(name: "variant \($0)", ticker: Workload.tickers[$0]) }
        variants[1].positions[0].entry = .compare(lhs: Workload.sma(20), op: .crossesBelow, rhs: Workload.sma(50))
        let request = CallRequest(method: .runBatch(BatchRequest(variants: variants, settings: settings)))
        var bytes = Array(request.encoded().readableBytesView)
        // Compare { lhs = 1 (0x0A ...), op = 2 (0x10 0x06: CROSSES_BELOW), rhs = 3 (0x1A ...) }.
        for index in bytes.indices.dropLast(2) where bytes[index] == 0x10 && bytes[index + 1] == 0x06 && bytes[index + 2] == 0x1A {
            bytes[index + 1] = 99
            break
        }
        return ByteBuffer(bytes: bytes)
    }
}

/// What the hostile connections saw: each case's outcomes, counted.
package struct HostileTally: Sendable {
    package var outcomes: [HostileCase: [String: Int]] = [:]

    package init() {}

    package mutating func record(_ kind: HostileCase, _ outcome: String) {
        outcomes[kind, default: [:]][outcome, default: 0] += 1
    }

    package mutating func merge(_ other: HostileTally) {
        for (kind, counts) in other.outcomes { outcomes[kind, default: [:]].merge(counts, uniquingKeysWith: +) }
    }

    package var calls: Int { outcomes.values.reduce(0) { $0 + $1.values.reduce(0, +) } }

    /// Outcomes other than the case's expected ones (a case cut short by the end of the run is
    /// not counted), as "case: outcome x count".
    package var unexpected: [String] {
        HostileCase.allCases.flatMap { kind in
            (outcomes[kind] ?? [:]).sorted { $0.key < $1.key }
                .filter { !kind.expected.contains($0.key) && $0.key != HostileCase.cutShort }
                .map { "\(kind.rawValue): \($0.key) x\($0.value)" }
        }
    }
}
