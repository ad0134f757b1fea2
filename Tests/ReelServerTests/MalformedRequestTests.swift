import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ReelServer
import Testing

/// Requests that break HTTP itself, or the API's framing, sent byte for byte over a real socket: each gets a 4xx
/// with the JSON error body (never a 500, an empty 400 or a dropped connection), and the server goes on answering.
@Suite struct MalformedRequestTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var bytes: [UInt8]
        var status: Int
        /// Send a FIN after the bytes: the client has nothing more to send (a body cut short).
        var halfClose = false
        var testDescription: String { name }

        init(_ name: String, _ text: String, _ status: Int = 400, halfClose: Bool = false) {
            self.init(name, Array(text.utf8), status, halfClose: halfClose)
        }

        init(_ name: String, _ bytes: [UInt8], _ status: Int = 400, halfClose: Bool = false) {
            self.name = name
            self.bytes = bytes
            self.status = status
            self.halfClose = halfClose
        }
    }

    static let json = "Content-Type: application/json\r\n"
    static func chunked(_ body: String) -> String {
        "POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\n\(json)Transfer-Encoding: chunked\r\n\r\n" + body
    }

    static let cases: [Case] = [
        // The request line
        Case("garbage instead of a request line", "hello there\r\n\r\n"),
        Case("an invalid method", "G@T /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        Case("an unknown HTTP version", "GET /healthz HTTP/7.3\r\nHost: localhost\r\n\r\n"),
        Case("CONNECT, as to a proxy", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405),
        Case("a space inside the target", "GET /v1/jo bs HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        Case("a control character in the target", "GET /v1/\u{01}jobs HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        // Headers
        Case("a header line without a colon", "GET /healthz HTTP/1.1\r\nHost: localhost\r\nNo colon here\r\n\r\n"),
        Case("a space before the colon", "GET /healthz HTTP/1.1\r\nHost : localhost\r\n\r\n"),
        Case("a control character in a header name", "GET /healthz HTTP/1.1\r\nX-\u{01}A: 1\r\n\r\n"),
        Case(
            "a NUL in a header value", [UInt8]("GET /healthz HTTP/1.1\r\nX-A: a".utf8) + [0] + Array("b\r\n\r\n".utf8)),
        Case("an obsolete folded header", "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-A: a\r\n  b\r\n\r\n"),
        Case(
            "a header larger than the limit",
            "GET /healthz HTTP/1.1\r\nX-A: \(String(repeating: "a", count: 90_000))\r\n\r\n", 431),
        Case(
            "more header fields than the limit",
            "GET /healthz HTTP/1.1\r\n" + (0..<300).map { "X-\($0): 1\r\n" }.joined() + "\r\n", 431),
        // Body framing
        Case("a Content-Length that is not a number", "POST /v1/jobs HTTP/1.1\r\n\(json)Content-Length: abc\r\n\r\n"),
        Case("a negative Content-Length", "POST /v1/jobs HTTP/1.1\r\n\(json)Content-Length: -5\r\n\r\n"),
        Case(
            "two different Content-Lengths",
            "POST /v1/jobs HTTP/1.1\r\n\(json)Content-Length: 5\r\nContent-Length: 6\r\n\r\n{}{}{}"),
        Case(
            "Content-Length with chunked",
            "POST /v1/jobs HTTP/1.1\r\n\(json)Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        Case(
            "a transfer coding other than chunked",
            "POST /v1/jobs HTTP/1.1\r\n\(json)Transfer-Encoding: gzip\r\n\r\nabc"),
        Case("a chunk size that is not hexadecimal", chunked("zz\r\n{}\r\n0\r\n\r\n")),
        Case("a negative chunk size", chunked("-5\r\n{}\r\n0\r\n\r\n")),
        Case("a chunk size that overflows", chunked("ffffffffffffffffffffff\r\n{}\r\n0\r\n\r\n")),
        Case("a chunk shorter than declared", chunked("a\r\n{}\r\n0\r\n\r\n"), halfClose: true),
        Case("a chunk without its CRLF", chunked("2\r\n{}XX0\r\n\r\n")),
        Case("a chunked body cut short", chunked("2\r\n{}\r\n"), halfClose: true),
        Case(
            "a body shorter than its Content-Length",
            "POST /v1/jobs HTTP/1.1\r\n\(json)Content-Length: 100\r\n\r\n{\"prompt\": \"a fox\"}", halfClose: true),
        // The API's own framing
        Case(
            "a multipart boundary that is not allowed",
            "POST /v1/videos HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=a\u{7f}b\r\nContent-Length: 2\r\n\r\n{}"
        ),
        Case(
            "a multipart body without its boundary",
            "POST /v1/videos HTTP/1.1\r\nContent-Type: multipart/form-data\r\nContent-Length: 2\r\n\r\n{}"),
        Case(
            "a content type the route does not take",
            "POST /v1/jobs HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}"),
        Case(
            "a batch of another content type",
            "POST /v1/batches HTTP/1.1\r\nContent-Type: image/png\r\nContent-Length: 2\r\n\r\n{}"),
        Case("JSON that is not JSON", "POST /v1/jobs HTTP/1.1\r\n\(json)Content-Length: 9\r\n\r\n{\"prompt\":"),
        Case("a query value of the wrong kind", "GET /v1/jobs?limit=%2B5 HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        Case("an unknown query parameter", "GET /v1/videos?colour=red HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        Case(
            "an Idempotency-Key over the limit",
            "POST /v1/jobs HTTP/1.1\r\n\(json)Idempotency-Key: \(String(repeating: "k", count: 300))\r\n"
                + "Content-Length: 2\r\n\r\n{}"),
        Case(
            "a path with a run of combining marks",
            "GET /v1/jobs/a\(String(repeating: "%CC%96%CC%81", count: 40)) HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    ]

    @Test(arguments: cases)
    func isAnsweredWithTheJSONError(_ bad: Case) async throws {
        let server = try TestServer()
        try await server.test(.live) { client in
            let port = try #require(client.port)
            let connection = try RawHTTPConnection(port: port)
            try await connection.send(bad.bytes)
            if bad.halfClose { connection.shutdownWrite() }
            let response = try await connection.response()
            #expect(response.status == bad.status, "\(response)")
            let error = try #require(response.apiError, "no JSON error body: \(response)")
            #expect((error["code"] as? String)?.isEmpty == false)
            #expect(((error["message"] as? String) ?? "").count > 10, "\(response)")
            // And the server is still there for the next client.
            #expect(try await client.execute(uri: "/healthz", method: .get).status == .ok)
            #expect(try await server.jobCount() == 0)
        }
    }

    /// After a framing error in a body, nothing on the connection can be trusted: the answer says so and the
    /// server closes it, and writes nothing after the answer.
    @Test func aBrokenChunkClosesTheConnectionAfterOneAnswer() async throws {
        let server = try TestServer()
        try await server.test(.live) { client in
            let connection = try RawHTTPConnection(port: try #require(client.port))
            try await connection.send(Self.chunked("zz\r\n{}\r\n0\r\n\r\n"))
            let response = try await connection.response()
            #expect(response.status == 400)
            #expect(response.headers["connection"] == "close")
            #expect(try await connection.waitForClose(timeout: .seconds(10)))
            #expect(
                connection.text.components(separatedBy: "HTTP/1.1 ").count == 2, "one response only: \(connection.text)"
            )
        }
    }

    /// A good request on a keep-alive connection, then a bad head: the first is answered, then the JSON 400.
    @Test func aBadHeadAfterAGoodRequestIsAnsweredInTurn() async throws {
        let server = try TestServer()
        try await server.test(.live) { client in
            let connection = try RawHTTPConnection(port: try #require(client.port))
            try await connection.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\nG@T / HTTP/1.1\r\n\r\n")
            _ = try await connection.waitFor("\"error\"")
            let parts = connection.text.components(separatedBy: "HTTP/1.1 ")
            #expect(parts.count == 3 && parts[1].hasPrefix("200") && parts[2].hasPrefix("400"), "\(connection.text)")
        }
    }
}
