import HTTPTypes
import Hummingbird
import ReelCore

/// One file of the web page, embedded in the binary (see `scripts/embed-web.py`).
struct WebAsset: Sendable {
    var contentType: String
    var body: String
}

/// `GET /` (the web page) and `GET /web/{file}` (its scripts and styles), from the files embedded in the binary,
/// with a Content-Security-Policy that lets the page load and call nothing but this server.
struct WebRoutes {
    var assets: [String: WebAsset] = WebAssets.files

    static let contentSecurityPolicy =
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'; script-src 'self'; "
        + "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

    func register(on router: Router<BasicRequestContext>) {
        router.get("/") { _, _ in try response("index.html") }
        router.get("/web/:file") { _, context in try response(context.parameters.require("file")) }
    }

    private func response(_ name: String) throws -> Response {
        guard let asset = assets[name] else {
            throw ReelError(
                .notFound, field: "path", "no web file \(name.quotedForMessage(limit: 80)); the page is at /")
        }
        let body = ByteBuffer(string: asset.body)
        return Response(
            status: .ok,
            headers: [
                .contentType: asset.contentType,
                .contentLength: String(body.readableBytes),
                .cacheControl: "no-cache",
                .contentSecurityPolicy: Self.contentSecurityPolicy,
                HTTPField.Name("X-Content-Type-Options")!: "nosniff",
                HTTPField.Name("Referrer-Policy")!: "no-referrer",
            ],
            body: ResponseBody(byteBuffer: body))
    }
}
