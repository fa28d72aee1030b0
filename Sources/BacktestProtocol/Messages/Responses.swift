import BacktestCore
import BacktestModel
import CBacktestProto
import NIOCore

/// GetServerInfo's answer.
public struct ServerInfo: Sendable, Hashable {
    public var serverVersion: String
    public var protocolVersion: UInt32
    /// "alpaca", "files" or "demo".
    public var dataSource: String
    public var cacheConnected: Bool
    /// "v2" or "reference".
    public var engine: String
    public var uptimeSeconds: Double
    public var maxParallel: Int
    public var cacheGeneration: UInt64

    public init(serverVersion: String, protocolVersion: UInt32 = UInt32(Wire.protocolVersion), dataSource: String = "",
                cacheConnected: Bool = false, engine: String = "", uptimeSeconds: Double = 0, maxParallel: Int = 0,
                cacheGeneration: UInt64 = 0) {
        self.serverVersion = serverVersion
        self.protocolVersion = protocolVersion
        self.dataSource = dataSource
        self.cacheConnected = cacheConnected
        self.engine = engine
        self.uptimeSeconds = uptimeSeconds
        self.maxParallel = maxParallel
        self.cacheGeneration = cacheGeneration
    }
}

/// PurgeCache's answer.
public struct PurgeCacheResult: Sendable, Hashable {
    public var entriesRemoved: UInt64
    /// The cache generation now in use.
    public var generation: UInt64

    public init(entriesRemoved: UInt64, generation: UInt64) {
        self.entriesRemoved = entriesRemoved
        self.generation = generation
    }
}

/// The result a unary call carries in its RESPONSE.
package enum CallResult: Sendable {
    case backtest(BacktestResult)
    case batchStatus(ProgressUpdate)
    case serverInfo(ServerInfo)
    case purge(PurgeCacheResult)
}

package struct ResponseHeader: Sendable, Hashable {
    package var requestID: String
    package var serverVersion: String

    package init(requestID: String = "", serverVersion: String = "") {
        self.requestID = requestID
        self.serverVersion = serverVersion
    }
}

/// The payload of a RESPONSE frame: how the call ended and, for a successful unary call, its result.
package struct CallResponse: WireMessage {
    package var header: ResponseHeader
    package var status: CallStatus
    package var result: CallResult?

    package init(header: ResponseHeader = ResponseHeader(), status: CallStatus = .ok, result: CallResult? = nil) {
        self.header = header
        self.status = status
        self.result = result
    }

    package static func decode(_ bytes: ByteBuffer, limits: DecodeLimits) throws -> CallResponse {
        try PB.callResponse.decode(bytes, limits: limits, what: "CallResponse") { c in
            let m = c.pointee
            let header = m.header.map {
                ResponseHeader(requestID: string($0.pointee.request_id), serverVersion: string($0.pointee.server_version))
            } ?? ResponseHeader()
            let result: CallResult? = switch m.result_case {
            case BACKTEST__V1__CALL_RESPONSE__RESULT_BACKTEST:
                .backtest(try ResultConversion.result(required(m.backtest, "backtest"), path: "backtest"))
            case BACKTEST__V1__CALL_RESPONSE__RESULT_BATCH_STATUS:
                .batchStatus(try ResultConversion.progress(required(m.batch_status, "batch_status"), path: "batch_status"))
            case BACKTEST__V1__CALL_RESPONSE__RESULT_SERVER_INFO:
                .serverInfo(ServerInfo(try required(m.server_info, "server_info").pointee))
            case BACKTEST__V1__CALL_RESPONSE__RESULT_PURGE:
                .purge(PurgeCacheResult(entriesRemoved: try required(m.purge, "purge").pointee.entries_removed,
                                        generation: m.purge.pointee.generation))
            default: nil
            }
            return CallResponse(header: header, status: ResultConversion.status(m.status), result: result)
        }
    }

    package func encode(into buffer: inout ByteBuffer) {
        PB.callResponse.encode(into: &buffer) { m, arena in
            let header = arena.message(PB.responseHeader)
            header.pointee.request_id = arena.cString(self.header.requestID)
            header.pointee.server_version = arena.cString(self.header.serverVersion)
            m.pointee.header = header
            m.pointee.status = arena.status(status)
            switch result {
            case .backtest(let result)?:
                m.pointee.result_case = BACKTEST__V1__CALL_RESPONSE__RESULT_BACKTEST
                m.pointee.backtest = arena.result(result)
            case .batchStatus(let update)?:
                m.pointee.result_case = BACKTEST__V1__CALL_RESPONSE__RESULT_BATCH_STATUS
                m.pointee.batch_status = arena.progress(update)
            case .serverInfo(let info)?:
                let i = arena.message(PB.serverInfo)
                i.pointee.server_version = arena.cString(info.serverVersion)
                i.pointee.protocol_version = info.protocolVersion
                i.pointee.data_source = arena.cString(info.dataSource)
                i.pointee.cache_connected = info.cacheConnected ? 1 : 0
                i.pointee.engine = arena.cString(info.engine)
                i.pointee.uptime_seconds = info.uptimeSeconds
                i.pointee.max_parallel = UInt32(clamping: info.maxParallel)
                i.pointee.cache_generation = info.cacheGeneration
                m.pointee.result_case = BACKTEST__V1__CALL_RESPONSE__RESULT_SERVER_INFO
                m.pointee.server_info = i
            case .purge(let purge)?:
                let p = arena.message(PB.purgeCacheResult)
                p.pointee.entries_removed = purge.entriesRemoved
                p.pointee.generation = purge.generation
                m.pointee.result_case = BACKTEST__V1__CALL_RESPONSE__RESULT_PURGE
                m.pointee.purge = p
            case nil:
                break
            }
        }
    }
}

extension ServerInfo {
    init(_ m: Backtest__V1__ServerInfo) {
        self.init(serverVersion: string(m.server_version), protocolVersion: m.protocol_version,
                  dataSource: string(m.data_source), cacheConnected: m.cache_connected != 0, engine: string(m.engine),
                  uptimeSeconds: m.uptime_seconds, maxParallel: Int(m.max_parallel), cacheGeneration: m.cache_generation)
    }
}

/// RunBatch streams one `ProgressUpdate` per DATA frame.
extension ProgressUpdate: WireMessage {
    package static func decode(_ bytes: ByteBuffer, limits: DecodeLimits) throws -> ProgressUpdate {
        try PB.progressUpdate.decode(bytes, limits: limits, what: "ProgressUpdate") { c in
            try ResultConversion.progress(c, path: "")
        }
    }

    package func encode(into buffer: inout ByteBuffer) {
        PB.progressUpdate.encode(into: &buffer) { m, arena in
            m.pointee = arena.progress(self).pointee
        }
    }
}
