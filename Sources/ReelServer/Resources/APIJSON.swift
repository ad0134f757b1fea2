import Foundation
import Hummingbird
import ReelAPI

/// How the API writes JSON (`WireJSON`: ISO 8601 dates in UTC with milliseconds, slashes unescaped), as responses.
enum APIJSON {
    static func makeEncoder() -> JSONEncoder { WireJSON.makeEncoder() }

    static func encode(_ value: some Encodable) throws -> ByteBuffer {
        ByteBuffer(data: try makeEncoder().encode(value))
    }

    /// A JSON response with the given status.
    static func response(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let body = try encode(value)
        return Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8", .contentLength: String(body.readableBytes)],
            body: ResponseBody(byteBuffer: body))
    }
}
