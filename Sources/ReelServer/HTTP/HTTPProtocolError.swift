import HTTPTypes
import Hummingbird
import NIOHTTP1
import ReelCore

extension ReelError.Code {
    /// The request is not well-formed HTTP: a bad request line, header or chunked body.
    public static let malformedRequest = ReelError.Code("malformed_request")
    /// The request's headers are larger than the server reads.
    public static let headersTooLarge = ReelError.Code("headers_too_large")
    /// The client did not send its request (head, or the rest of its body) in time.
    public static let requestTimeout = ReelError.Code("request_timeout")
    /// The server has as many connections open as it allows, none of them idle.
    public static let tooManyConnections = ReelError.Code("too_many_connections")
}

/// What the API answers when a request breaks HTTP itself rather than one of Reel's rules: the JSON error body
/// like every other 4xx, and `Connection: close`, since nothing after a framing error can be trusted.
enum HTTPProtocolError {
    /// The most bytes of headers the server reads (NIO's limit for one field and for all of them together).
    static let maxHeaderBytes = 80 * 1024
    /// The most header fields a request may have.
    static let maxHeaderFields = 200

    /// The answer to an error the HTTP decoder (or the conversion of its head) raised.
    static func apiError(for error: any Error) -> APIError {
        if let refused = error as? ComfyWebSocket.Refused { return refused.error }
        guard let parserError = error as? HTTPParserError else {
            return answer(.badRequest, .malformedRequest, "the request is not valid HTTP/1.1: \(error)")
        }
        switch parserError {
        case .headerOverflow:
            return answer(
                .requestHeaderFieldsTooLarge, .headersTooLarge,
                "the request's headers are larger than \(maxHeaderBytes) bytes or more than \(maxHeaderFields) "
                    + "fields; send fewer or shorter headers")
        case .invalidChunkSize:
            return answer(
                .badRequest, .malformedRequest,
                "the chunked body has an invalid chunk size: each chunk starts with its size in hexadecimal digits "
                    + "and CRLF")
        case .invalidEOFState:
            return answer(
                .badRequest, .malformedRequest,
                "the request ended before its body did: send as many bytes as Content-Length says, or end a chunked "
                    + "body with a zero-size chunk")
        case .invalidContentLength, .unexpectedContentLength:
            return answer(
                .badRequest, .malformedRequest,
                "the Content-Length header is invalid: give one decimal length, and not together with "
                    + "Transfer-Encoding: chunked")
        case .lfExpected, .invalidConstant, .strictModeAssertion, .unknown:
            return answer(
                .badRequest, .malformedRequest,
                "the request is not valid HTTP/1.1 (\(parserError.debugDescription)): check its line endings "
                    + "(CRLF), its Transfer-Encoding and the CRLF after each chunk")
        default:
            return answer(
                .badRequest, .malformedRequest,
                "the request is not valid HTTP/1.1: \(parserError.debugDescription)")
        }
    }

    /// A request whose head, or the next part of whose body, did not come within `timeout`.
    static func timeout(_ timeout: Duration, head: Bool) -> APIError {
        answer(
            .requestTimeout, .requestTimeout,
            head
                ? "the request head did not arrive within \(timeout.secondsText) s; send the whole head at once"
                : "the request body stalled for \(timeout.secondsText) s before its end; send it without pauses")
    }

    /// The answer on a connection refused because every allowed connection is busy.
    static func tooManyConnections(_ limit: Int) -> APIError {
        APIError(
            status: .serviceUnavailable,
            ReelError(
                .tooManyConnections,
                "the server has \(limit) connections open, all busy; retry in a moment or close idle connections"),
            headers: [.connection: "close", .retryAfter: "1"])
    }

    /// The answer to CONNECT: this server is no proxy.
    static let connect = APIError(
        status: .methodNotAllowed,
        ReelError(.methodNotAllowed, "CONNECT is not supported: this is Reel's API, not a proxy"),
        headers: [.connection: "close", .allow: "GET, HEAD, POST, DELETE"])

    private static func answer(_ status: HTTPResponse.Status, _ code: ReelError.Code, _ message: String) -> APIError {
        APIError(status: status, ReelError(code, message), headers: [.connection: "close"])
    }
}

extension Duration {
    /// Whole seconds when whole, otherwise with a fraction, for messages.
    var secondsText: String {
        let (whole, fraction) = components
        return fraction == 0 ? String(whole) : String(Double(whole) + Double(fraction) / 1e18)
    }
}
