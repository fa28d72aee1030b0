import BacktestCore
import CBacktestProto
import CProtobufC

// Small readers for the fields of unpacked protobuf-c structs.

/// A proto3 string field; protobuf-c never leaves one NULL, but a NULL reads as "".
@inline(__always)
func string(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
    pointer.map { String(cString: $0) } ?? ""
}

/// The elements of a repeated scalar field.
@inline(__always)
func scalars<T>(_ pointer: UnsafeMutablePointer<T>?, _ count: Int) -> [T] {
    guard let pointer, count > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: pointer, count: count))
}

/// The elements of a repeated message field, converted one by one with their index.
func messages<CMessage, T>(
    _ pointer: UnsafeMutablePointer<UnsafeMutablePointer<CMessage>?>?, _ count: Int,
    _ convert: (UnsafePointer<CMessage>, Int) throws -> T
) rethrows -> [T] {
    guard let pointer, count > 0 else { return [] }
    var result: [T] = []
    result.reserveCapacity(count)
    for index in 0..<count {
        // Decoding a large request runs on the compute threads: let it be time-sliced.
        if index & 63 == 63 { CancellationFlag.yieldPoint() }
        guard let element = pointer[index] else { continue }
        result.append(try convert(element, index))
    }
    return result
}

/// A required sub-message: missing is an INVALID_ARGUMENT naming the field (`path` is evaluated
/// only then).
@inline(__always)
func required<CMessage>(_ pointer: UnsafeMutablePointer<CMessage>?, _ path: @autoclosure () -> String) throws -> UnsafePointer<CMessage> {
    guard let pointer else {
        let path = path()
        throw BacktestError.invalidArgument("\(path) is required", field: path)
    }
    return UnsafePointer(pointer)
}

/// An enum field holding a number its enum does not define: INVALID_ARGUMENT naming `path`,
/// showing the number as sent (protobuf-c keeps the low 32 bits: -1 arrives as 4294967295 and is
/// shown as -1) and listing the allowed values from the enum's descriptor (its `*_UNSPECIFIED`
/// placeholder left out).
func unknownEnum(_ raw: UInt32, _ path: String, _ descriptor: ProtobufCEnumDescriptor) -> BacktestError {
    let field = path.split(separator: ".").last.map(String.init) ?? path
    var allowed: [String] = []
    if let values = descriptor.values {
        for i in 0..<Int(descriptor.n_values) {
            let name = String(cString: values[i].name)
            if !name.hasSuffix("_UNSPECIFIED") { allowed.append("\(name) (\(values[i].value))") }
        }
    }
    return BacktestError.invalidArgument(
        "\(field) \(Int32(bitPattern: raw)) is not a \(String(cString: descriptor.short_name)) value; allowed: \(allowed.joined(separator: ", "))",
        field: path)
}

/// Appends a child to a field path: "strategy" + "positions[1]" = "strategy.positions[1]".
@inline(__always)
func join(_ path: String, _ child: String) -> String {
    path.isEmpty ? child : "\(path).\(child)"
}

/// Every message type the bridge handles.
enum PB {
    static let errorStatus = ProtobufMessageType(backtest__v1__error_status__init)
    static let indicatorSpec = ProtobufMessageType(backtest__v1__indicator_spec__init)
    static let series = ProtobufMessageType(backtest__v1__series__init)
    static let operand = ProtobufMessageType(backtest__v1__operand__init)
    static let compare = ProtobufMessageType(backtest__v1__compare__init)
    static let conditionList = ProtobufMessageType(backtest__v1__condition_list__init)
    static let condition = ProtobufMessageType(backtest__v1__condition__init)
    static let position = ProtobufMessageType(backtest__v1__position__init)
    static let strategy = ProtobufMessageType(backtest__v1__strategy__init)
    static let settings = ProtobufMessageType(backtest__v1__backtest_settings__init)
    static let backtestRequest = ProtobufMessageType(backtest__v1__backtest_request__init)
    static let batchRequest = ProtobufMessageType(backtest__v1__batch_request__init)
    static let batchStatusRequest = ProtobufMessageType(backtest__v1__batch_status_request__init)
    static let cancelBatchRequest = ProtobufMessageType(backtest__v1__cancel_batch_request__init)
    static let serverInfoRequest = ProtobufMessageType(backtest__v1__server_info_request__init)
    static let purgeCacheRequest = ProtobufMessageType(backtest__v1__purge_cache_request__init)
    static let order = ProtobufMessageType(backtest__v1__order__init)
    static let metrics = ProtobufMessageType(backtest__v1__metrics__init)
    static let runStatistics = ProtobufMessageType(backtest__v1__run_statistics__init)
    static let warning = ProtobufMessageType(backtest__v1__warning__init)
    static let backtestResult = ProtobufMessageType(backtest__v1__backtest_result__init)
    static let variantResult = ProtobufMessageType(backtest__v1__variant_result__init)
    static let progressUpdate = ProtobufMessageType(backtest__v1__progress_update__init)
    static let serverInfo = ProtobufMessageType(backtest__v1__server_info__init)
    static let cacheStats = ProtobufMessageType(backtest__v1__cache_stats__init)
    static let purgeCacheResult = ProtobufMessageType(backtest__v1__purge_cache_result__init)
    static let requestHeader = ProtobufMessageType(backtest__v1__request_header__init)
    static let responseHeader = ProtobufMessageType(backtest__v1__response_header__init)
    static let callRequest = ProtobufMessageType(backtest__v1__call_request__init)
    static let callResponse = ProtobufMessageType(backtest__v1__call_response__init)
    static let connectionSettings = ProtobufMessageType(backtest__v1__settings__init)
    static let ping = ProtobufMessageType(backtest__v1__ping__init)
    static let cancel = ProtobufMessageType(backtest__v1__cancel__init)
    static let goAway = ProtobufMessageType(backtest__v1__go_away__init)
    static let gridAxis = ProtobufMessageType(backtest__v1__grid_axis__init)
    static let grid = ProtobufMessageType(backtest__v1__grid__init)
    static let gridParameter = ProtobufMessageType(backtest__v1__grid_parameter__init)
    static let backtestSummary = ProtobufMessageType(backtest__v1__backtest_summary__init)
    static let variantResultsRequest = ProtobufMessageType(backtest__v1__variant_results_request__init)
    static let variantResults = ProtobufMessageType(backtest__v1__variant_results__init)
    static let indicatorsRequest = ProtobufMessageType(backtest__v1__indicators_request__init)
    static let indicatorSeriesValues = ProtobufMessageType(backtest__v1__indicator_series_values__init)
    static let indicatorsResult = ProtobufMessageType(backtest__v1__indicators_result__init)
}
