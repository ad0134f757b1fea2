import Hummingbird
import ReelAPI
import ReelCore

/// An error as the API answers it: an `ErrorBody` (`{"error": {"code", "message", "field"}}`) with its status.
struct APIError: Error, HTTPResponseError {
    var status: HTTPResponse.Status
    var error: ReelError
    /// Headers the answer carries besides its body: `WWW-Authenticate` on a 401, `Retry-After` on a 429.
    var headers: HTTPFields = [:]

    init(_ error: ReelError) {
        self.status = error.httpStatus
        self.error = error
        if status == .tooManyRequests { headers[.retryAfter] = String(JobService.queueFullRetryAfterSeconds) }
    }

    init(status: HTTPResponse.Status, _ error: ReelError, headers: HTTPFields = [:]) {
        self.status = status
        self.error = error
        self.headers = headers
    }

    /// What the answer's body says.
    var body: ErrorBody {
        ErrorBody(error: .init(code: error.code.rawValue, message: error.message, field: error.field))
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = try APIJSON.response(body, status: status)
        for field in headers { response.headers.append(field) }
        return response
    }
}
