import Hummingbird
import ReelCore

/// Refuses a request whose path or query holds a run of combining marks longer than any text needs, before a route
/// reads its query parameters into a dictionary (see `CombiningMarks`).
struct URITextMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    )
        async throws -> Response
    {
        try ClientText.check(request.uri.path.utf8, as: .percentEncoded, field: "path")
        if let query = request.uri.query { try ClientText.check(query.utf8, as: .percentEncoded, field: "query") }
        return try await next(request, context)
    }
}
