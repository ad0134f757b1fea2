import Hummingbird
import ReelCore

/// An error as the API answers it: `{"error": {"code": …, "message": …, "field": … | null}}` with its status.
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

    struct Body: Encodable {
        struct Detail: Encodable {
            var code: String
            var message: String
            var field: String?

            enum CodingKeys: String, CodingKey { case code, message, field }

            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(code, forKey: .code)
                try container.encode(message, forKey: .message)
                try container.encode(field, forKey: .field)
            }
        }
        var error: Detail
    }

    static func detail(code: String, message: String, field: String?) -> Body.Detail {
        Body.Detail(code: code, message: message, field: field)
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = try APIJSON.response(
            Body(error: .init(code: error.code.rawValue, message: error.message, field: error.field)), status: status)
        for field in headers { response.headers.append(field) }
        return response
    }
}
