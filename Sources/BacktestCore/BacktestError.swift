/// Status codes of every call, numbered as gRPC's (and as `StatusCode` in proto/backtest.proto).
public enum StatusCode: Int32, Sendable, CaseIterable, CustomStringConvertible {
    case ok = 0
    case cancelled = 1
    case unknown = 2
    case invalidArgument = 3
    case deadlineExceeded = 4
    case notFound = 5
    case alreadyExists = 6
    case permissionDenied = 7
    case resourceExhausted = 8
    case failedPrecondition = 9
    case aborted = 10
    case outOfRange = 11
    case unimplemented = 12
    case `internal` = 13
    case unavailable = 14
    case dataLoss = 15
    case unauthenticated = 16

    public var description: String {
        switch self {
        case .ok: "OK"
        case .cancelled: "CANCELLED"
        case .unknown: "UNKNOWN"
        case .invalidArgument: "INVALID_ARGUMENT"
        case .deadlineExceeded: "DEADLINE_EXCEEDED"
        case .notFound: "NOT_FOUND"
        case .alreadyExists: "ALREADY_EXISTS"
        case .permissionDenied: "PERMISSION_DENIED"
        case .resourceExhausted: "RESOURCE_EXHAUSTED"
        case .failedPrecondition: "FAILED_PRECONDITION"
        case .aborted: "ABORTED"
        case .outOfRange: "OUT_OF_RANGE"
        case .unimplemented: "UNIMPLEMENTED"
        case .internal: "INTERNAL"
        case .unavailable: "UNAVAILABLE"
        case .dataLoss: "DATA_LOSS"
        case .unauthenticated: "UNAUTHENTICATED"
        }
    }
}

/// The one error type that crosses layer boundaries: a status code for the wire, a message for a
/// person, the path of the request field at fault when there is one, and, for the server's log
/// only, the error that caused it.
public struct BacktestError: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: StatusCode
    public var message: String
    /// e.g. "strategy.positions[1].weight"; empty when the error is not about one field.
    public var field: String
    /// The underlying error (a curl, Redis, file-system or decoding error, ...) this one was made
    /// from: for logs (`logDescription`). It is never sent to a client and never part of
    /// `message` or `description`; `==` ignores it.
    public var cause: (any Error)?

    public init(_ code: StatusCode, _ message: String, field: String = "", cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.field = field
        self.cause = cause
    }

    /// Code, field and message: the cause is for logs only.
    public static func == (lhs: BacktestError, rhs: BacktestError) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message && lhs.field == rhs.field
    }

    /// Code, field and message, as `==`.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
        hasher.combine(message)
        hasher.combine(field)
    }

    /// `description` followed by the cause, if any: what the server logs, never what it sends.
    public var logDescription: String {
        guard let cause else { return description }
        let detail = (cause as? BacktestError)?.logDescription ?? String(describing: cause)
        return "\(description) (cause: \(detail))"
    }

    public static func invalidArgument(_ message: String, field: String = "") -> BacktestError {
        BacktestError(.invalidArgument, message, field: field)
    }

    public var description: String {
        field.isEmpty ? "\(code): \(message)" : "\(code): \(field): \(message)"
    }
}
