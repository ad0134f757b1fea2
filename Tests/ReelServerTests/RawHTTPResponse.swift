import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// One HTTP response as read off a raw socket: status, headers (names lowercased) and the body its
/// Content-Length announced.
struct RawHTTPResponse: CustomStringConvertible {
    var status: Int
    var headers: [String: String]
    var body: Data

    /// The `error` object of a JSON error body, or nil when the body is not one.
    var apiError: [String: Any]? {
        guard headers["content-type"]?.hasPrefix("application/json") == true,
            let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any]
        else { return nil }
        return object["error"] as? [String: Any]
    }

    var description: String {
        "\(status) \(headers) \(String(decoding: body.prefix(300), as: UTF8.self))"
    }

    /// Parses the first complete response in `bytes`, or nil while it is incomplete.
    static func parse(_ bytes: [UInt8]) -> RawHTTPResponse? {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard bytes.count >= 4,
            let end = (0...(bytes.count - 4)).first(where: { Array(bytes[$0..<$0 + 4]) == separator })
        else { return nil }
        let head = String(decoding: bytes[..<end], as: UTF8.self)
        let lines = head.components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { return nil }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(
                in: .whitespaces)
        }
        let length = headers["content-length"].flatMap(Int.init) ?? 0
        let bodyStart = end + 4
        guard bytes.count >= bodyStart + length else { return nil }
        return RawHTTPResponse(status: status, headers: headers, body: Data(bytes[bodyStart..<bodyStart + length]))
    }
}

extension RawHTTPConnection {
    /// Reads until a whole response has arrived; throws after `timeout`, or when the server closes first.
    func response(timeout: Duration = .seconds(10)) async throws -> RawHTTPResponse {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let response = RawHTTPResponse.parse(received) { return response }
            if isClosedByPeer { throw TestFailure("the server closed the connection without a response; got: \(text)") }
            guard ContinuousClock.now < deadline else {
                throw TestFailure("no response within \(timeout); got: \(text)")
            }
            if !readAvailable() { try await Task.sleep(for: .milliseconds(5)) }
        }
    }

    /// Waits until the server closes the connection; false when it is still open after `timeout`.
    func waitForClose(timeout: Duration) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !isClosedByPeer {
            guard ContinuousClock.now < deadline else { return false }
            if !readAvailable() { try await Task.sleep(for: .milliseconds(10)) }
        }
        return true
    }
}
