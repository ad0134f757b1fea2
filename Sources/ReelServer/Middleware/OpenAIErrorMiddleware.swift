import Hummingbird
import ReelCore

/// Gives errors on `/v1/videos` routes the OpenAI SDKs' envelope, `{"error": {"message", "type", "param",
/// "code"}}`, so that their clients raise the right exception with the server's message. Every other route keeps
/// Reel's own shape. It sits inside `ErrorMiddleware` and outside `AuthMiddleware`, so a 401 or 429 on these
/// routes is shaped too, headers included.
struct OpenAIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    static func applies(to path: String) -> Bool {
        path == "/v1/videos" || path.hasPrefix("/v1/videos/")
    }

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    )
        async throws -> Response
    {
        guard Self.applies(to: request.uri.path) else { return try await next(request, context) }
        do {
            return try await next(request, context)
        } catch {
            let apiError = ErrorMiddleware<Context>.apiError(for: error, request: request, logger: context.logger)
            return try Self.response(for: apiError)
        }
    }

    struct Body: Encodable {
        struct Detail: Encodable {
            var message: String
            var type: String
            var param: String?
            var code: String

            enum CodingKeys: String, CodingKey { case message, type, param, code }

            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(message, forKey: .message)
                try container.encode(type, forKey: .type)
                try container.encode(param, forKey: .param)
                try container.encode(code, forKey: .code)
            }
        }
        var error: Detail
    }

    /// OpenAI's error types: `invalid_request_error` for what the client can fix, `rate_limit_error` for a 429,
    /// `server_error` for the server's own failures.
    static func type(of status: HTTPResponse.Status) -> String {
        switch status.code {
        case 429: "rate_limit_error"
        case 500...: "server_error"
        default: "invalid_request_error"
        }
    }

    static func response(for error: APIError) throws -> Response {
        let detail = Body.Detail(
            message: error.error.message, type: type(of: error.status), param: error.error.field,
            code: error.error.code.rawValue)
        var response = try APIJSON.response(Body(error: detail), status: error.status)
        for field in error.headers { response.headers.append(field) }
        return response
    }
}
