import HTTPTypes
import Hummingbird
import ReelCore

/// Requires `Authorization: Bearer KEY` on every route but `/healthz` when the server has keys, and limits each
/// key's requests per minute. The key's id becomes the request's `Caller`, which scopes every job it touches.
///
/// Without keys every request passes as `.unrestricted` and there is no per-key limit: such a server listens only
/// on a loopback address (`reel serve` refuses otherwise).
struct AuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let keys: APIKeys?
    let rateLimiter: RateLimiter?

    /// Paths open without a key: a liveness probe must not need a secret, nor the API's published contract.
    static var openPaths: Set<String> { ["/healthz", "/", "/openapi.json"] }

    /// The web page's static files hold no secret; the page asks for a key and sends it with every API call.
    static func isOpen(_ path: String) -> Bool {
        if openPaths.contains(path) { return true }
        // Exactly one plain file name under /web/: no further segment, no escape, no dot-dot.
        guard path.hasPrefix("/web/") else { return false }
        let name = path.dropFirst("/web/".count)
        return !name.isEmpty && !name.contains("/") && !name.contains("%") && !name.contains("..")
            && !name.contains("\\")
    }

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    )
        async throws -> Response
    {
        guard let keys, !keys.isEmpty, !Self.isOpen(request.uri.path) else {
            return try await next(request, context)
        }
        guard let header = request.headers[.authorization], !header.isEmpty else {
            throw Self.unauthorized(
                .missingAPIKey,
                "this server requires an API key: send the header 'Authorization: Bearer YOUR_KEY'",
                challenge: #"Bearer realm="reel""#)
        }
        guard let token = APIKeys.bearerToken(header) else {
            throw Self.unauthorized(
                .missingAPIKey, "the Authorization header must be 'Bearer YOUR_KEY'",
                challenge: #"Bearer realm="reel", error="invalid_request""#)
        }
        // A header is bounded by the HTTP parser; the key is hashed whatever its length, and compared as a digest.
        guard let key = keys.key(for: token) else {
            throw Self.unauthorized(
                .invalidAPIKey, "the API key is not valid for this server",
                challenge: #"Bearer realm="reel", error="invalid_token""#)
        }
        if let rateLimiter, let wait = rateLimiter.take(key.id) {
            throw APIError(
                status: .tooManyRequests,
                ReelError(
                    .rateLimitExceeded,
                    "this key may make \(rateLimiter.perMinute) requests a minute; retry in \(wait) s"),
                headers: [.retryAfter: String(wait)])
        }
        return try await Caller.$current.withValue(Caller(owner: key.id)) {
            try await next(request, context)
        }
    }

    static func unauthorized(_ code: ReelError.Code, _ message: String, challenge: String) -> APIError {
        APIError(status: .unauthorized, ReelError(code, message), headers: [.wwwAuthenticate: challenge])
    }
}
