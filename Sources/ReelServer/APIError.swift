import Hummingbird
import ReelCore

/// An error as the API answers it: `{"error": {"code": …, "message": …, "field": … | null}}` with its status.
struct APIError: Error, HTTPResponseError {
    var status: HTTPResponse.Status
    var error: ReelError

    init(_ error: ReelError) {
        self.status = error.httpStatus
        self.error = error
    }

    init(status: HTTPResponse.Status, _ error: ReelError) {
        self.status = status
        self.error = error
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
        try APIJSON.response(
            Body(error: .init(code: error.code.rawValue, message: error.message, field: error.field)), status: status)
    }
}
