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
    /// The cache's figures; nil when the server runs without a cache (or is older).
    public var cache: CacheStatsInfo?

    public init(serverVersion: String, protocolVersion: UInt32 = UInt32(Wire.protocolVersion), dataSource: String = "",
                cacheConnected: Bool = false, engine: String = "", uptimeSeconds: Double = 0, maxParallel: Int = 0,
                cacheGeneration: UInt64 = 0, cache: CacheStatsInfo? = nil) {
        self.cache = cache
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

/// `ServerInfo.cache`: the cache's figures since the server process started (CacheStats).
public struct CacheStatsInfo: Sendable, Hashable {
    /// Month-of-bars and indicator lookups answered by the cache, and those that went to the source.
    public var hits: UInt64 = 0
    public var misses: UInt64 = 0
    /// hits / (hits + misses); 0 before any lookup.
    public var hitRate: Double = 0
    /// Corrupt values, or values stored under another key, found and not served.
    public var rejectedValues: UInt64 = 0
    /// Bytes and keys this server wrote to Redis in the current generation.
    public var generationBytes: UInt64 = 0
    public var generationKeys: UInt64 = 0
    /// Size of the in-process layer.
    public var localBytes: UInt64 = 0
    public var localEntries: UInt64 = 0
    /// This server's last purge (Unix seconds; 0 when none since start), why, keys removed.
    public var lastPurgeUnixSeconds: Int64 = 0
    public var lastPurgeReason: String = ""
    public var lastPurgeRemoved: UInt64 = 0
    /// Requests that opened the cache, and of them those that found Redis unreachable.
    public var requests: UInt64 = 0
    public var requestsWithoutRedis: UInt64 = 0

    public init() {}
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
    /// GetVariantResults: FULL results, in the order asked.
    case variantResults(batchID: String, results: [VariantResult])
    /// GetIndicators' answer.
    case indicators(IndicatorsResult)
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
            case BACKTEST__V1__CALL_RESPONSE__RESULT_VARIANT_RESULTS:
                try SweepConversion.variantResults(required(m.variant_results, "variant_results"), path: "variant_results")
            case BACKTEST__V1__CALL_RESPONSE__RESULT_INDICATORS:
                .indicators(try IndicatorConversion.result(required(m.indicators, "indicators"), path: "indicators"))
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
                if let cache = info.cache {
                    let c = arena.message(PB.cacheStats)
                    c.pointee.hits = cache.hits
                    c.pointee.misses = cache.misses
                    c.pointee.hit_rate = cache.hitRate
                    c.pointee.rejected_values = cache.rejectedValues
                    c.pointee.generation_bytes = cache.generationBytes
                    c.pointee.generation_keys = cache.generationKeys
                    c.pointee.local_bytes = cache.localBytes
                    c.pointee.local_entries = cache.localEntries
                    c.pointee.last_purge_unix_seconds = cache.lastPurgeUnixSeconds
                    c.pointee.last_purge_reason = arena.cString(cache.lastPurgeReason)
                    c.pointee.last_purge_removed = cache.lastPurgeRemoved
                    c.pointee.requests = cache.requests
                    c.pointee.requests_without_redis = cache.requestsWithoutRedis
                    i.pointee.cache = c
                }
                m.pointee.result_case = BACKTEST__V1__CALL_RESPONSE__RESULT_SERVER_INFO
                m.pointee.server_info = i
            case .purge(let purge)?:
                let p = arena.message(PB.purgeCacheResult)
                p.pointee.entries_removed = purge.entriesRemoved
                p.pointee.generation = purge.generation
                m.pointee.result_case = BACKTEST__V1__CALL_RESPONSE__RESULT_PURGE
                m.pointee.purge = p
            case .variantResults(let batchID, let results)?:
                m.pointee.result_case = BACKTEST__V1__CALL_RESPONSE__RESULT_VARIANT_RESULTS
                m.pointee.variant_results = arena.variantResults(batchID: batchID, results: results)
            case .indicators(let result)?:
                m.pointee.result_case = BACKTEST__V1__CALL_RESPONSE__RESULT_INDICATORS
                m.pointee.indicators = arena.indicatorsResult(result)
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
                  uptimeSeconds: m.uptime_seconds, maxParallel: Int(m.max_parallel), cacheGeneration: m.cache_generation,
                  cache: m.cache.map { CacheStatsInfo($0.pointee) })
    }
}

extension CacheStatsInfo {
    init(_ c: Backtest__V1__CacheStats) {
        self.init()
        hits = c.hits
        misses = c.misses
        hitRate = c.hit_rate
        rejectedValues = c.rejected_values
        generationBytes = c.generation_bytes
        generationKeys = c.generation_keys
        localBytes = c.local_bytes
        localEntries = c.local_entries
        lastPurgeUnixSeconds = c.last_purge_unix_seconds
        lastPurgeReason = string(c.last_purge_reason)
        lastPurgeRemoved = c.last_purge_removed
        requests = c.requests
        requestsWithoutRedis = c.requests_without_redis
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
