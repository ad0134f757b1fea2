import HTTPTypes
import ReelCore

extension ReelError.Code {
    /// The request body is not JSON, or not a JSON object.
    public static let invalidJSON = ReelError.Code("invalid_json")
    /// The request body is larger than the server accepts.
    public static let payloadTooLarge = ReelError.Code("payload_too_large")
    /// The method is not one the path supports.
    public static let methodNotAllowed = ReelError.Code("method_not_allowed")
    /// Something failed inside the server; the message does not say what, the log does.
    public static let internalError = ReelError.Code("internal_error")
}

extension ReelError {
    /// The HTTP status an error answers with: the one place codes meet HTTP.
    var httpStatus: HTTPResponse.Status {
        switch code {
        case .invalidValue, .invalidJSON, .modelNotFound: .badRequest
        case .notFound: .notFound
        case .conflict: .conflict
        case .payloadTooLarge: .contentTooLarge
        case .methodNotAllowed: .methodNotAllowed
        case .engineUnavailable: .serviceUnavailable
        default: .internalServerError
        }
    }
}
