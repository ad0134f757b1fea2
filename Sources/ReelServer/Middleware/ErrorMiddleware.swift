import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import ReelCore
import ReelStore

/// Turns every error a route throws into the API's error shape: a `ReelError` into its status, framework errors
/// (unknown route, body too large) into theirs, and anything else into a 500 whose cause goes to the log only.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    )
        async throws -> Response
    {
        do {
            return try await next(request, context)
        } catch {
            return try Self.apiError(for: error, request: request, logger: context.logger)
                .response(from: request, context: context)
        }
    }

    static func apiError(for error: any Error, request: Request, logger: Logger) -> APIError {
        switch error {
        case let error as APIError:
            return error
        case let error as ReelError:
            return APIError(error)
        case let error as JobStoreError:
            switch error.code {
            case .notFound: return APIError(ReelError(.notFound, error.message))
            case .idempotencyConflict, .duplicateID: return APIError(ReelError(.conflict, error.message))
            case .diskFull:
                logger.error("\(request.method) \(request.uri.path): \(error.message)")
                return APIError(status: .insufficientStorage, ReelError(.storageFull, error.message))
            case .busy:
                logger.warning("\(request.method) \(request.uri.path): \(error.message)")
                return APIError(
                    status: .serviceUnavailable, ReelError(.storeBusy, error.message),
                    headers: [.retryAfter: String(JobStoreError.busyRetryAfterSeconds)])
            case .unavailable:
                logger.error("\(request.method) \(request.uri.path): \(error.message)")
                return APIError(
                    status: .serviceUnavailable, ReelError(.storeUnavailable, error.message),
                    headers: [.retryAfter: String(JobStoreError.busyRetryAfterSeconds)])
            case .corrupt: break
            }
        case is HTTPParserError, is ByteToMessageDecoderError:
            // The body's framing broke while a route read it (a bad chunk, a body cut short).
            return HTTPProtocolError.apiError(for: error)
        case let error as any HTTPResponseError:
            return APIError(status: error.status, frameworkError(error.status, request: request))
        default:
            break
        }
        logger.error("\(request.method) \(request.uri.path) failed: \(String(reflecting: error))")
        return APIError(
            status: .internalServerError,
            ReelError(.internalError, "the server failed to handle this request; its log says why"))
    }

    private static func frameworkError(_ status: HTTPResponse.Status, request: Request) -> ReelError {
        switch status {
        case .notFound:
            return ReelError(.notFound, "no such resource: \(request.method) \(request.uri.path)")
        case .methodNotAllowed:
            return ReelError(.methodNotAllowed, "\(request.uri.path) does not support \(request.method)")
        case .contentTooLarge:
            return ReelError(.payloadTooLarge, "the request body is too large")
        case .badRequest:
            return ReelError(.malformedRequest, "the request is malformed: \(request.method) \(request.uri.path)")
        case .internalServerError:
            return ReelError(.internalError, "the server failed to handle this request; its log says why")
        default:
            return ReelError(ReelError.Code("http_\(status.code)"), status.reasonPhrase)
        }
    }
}
