import HTTPTypes
import ReelCore

extension ReelError.Code {
    /// The request body is not JSON, or not a JSON object.
    public static let invalidJSON = ReelError.Code("invalid_json")
    /// The method is not one the path supports.
    public static let methodNotAllowed = ReelError.Code("method_not_allowed")
    /// Something failed inside the server; the message does not say what, the log does.
    public static let internalError = ReelError.Code("internal_error")
    /// The request has no `Authorization: Bearer` key, and the server requires one.
    public static let missingAPIKey = ReelError.Code("missing_api_key")
    /// The request's key is not one of the server's.
    public static let invalidAPIKey = ReelError.Code("invalid_api_key")
    /// The key has made more requests in the last minute than the server allows.
    public static let rateLimitExceeded = ReelError.Code("rate_limit_exceeded")
    /// The key has as many jobs queued as the server allows; more are accepted as those start.
    public static let tooManyQueued = ReelError.Code("too_many_queued")
    /// The job database stayed locked past its busy timeout: retry after `Retry-After` (503).
    public static let storeBusy = ReelError.Code("store_busy")
    /// The job database cannot be read or written (503).
    public static let storeUnavailable = ReelError.Code("store_unavailable")
}

extension ReelError {
    /// The HTTP status an error answers with: the one place codes meet HTTP.
    var httpStatus: HTTPResponse.Status {
        switch code {
        case .invalidValue, .invalidJSON, .modelNotFound: .badRequest
        case .notFound: .notFound
        case .conflict: .conflict
        case .payloadTooLarge: .contentTooLarge
        case .missingAPIKey, .invalidAPIKey: .unauthorized
        case .rateLimitExceeded, .tooManyQueued: .tooManyRequests
        case .methodNotAllowed: .methodNotAllowed
        case .engineUnavailable, .storeBusy, .storeUnavailable, .tooManyConnections: .serviceUnavailable
        case .storageFull: .insufficientStorage
        case .malformedRequest: .badRequest
        case .headersTooLarge: .requestHeaderFieldsTooLarge
        case .requestTimeout: .requestTimeout
        default: .internalServerError
        }
    }
}

extension HTTPResponse.Status {
    /// 507 Insufficient Storage (RFC 4918): the server cannot store what the request needs stored.
    static var insufficientStorage: Self { .init(code: 507, reasonPhrase: "Insufficient Storage") }
}
