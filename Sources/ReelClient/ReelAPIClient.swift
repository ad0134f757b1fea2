import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ReelWorkerProtocol

/// An error answer of the REST API: `{"error":{"code":…,"message":…,"field":…}}`.
public struct APIError: Error, Sendable, CustomStringConvertible {
    public var status: Int
    public var code: String
    public var message: String
    public var field: String?

    public var description: String {
        (field.map { "\($0): " } ?? "") + message + " (\(code), HTTP \(status))"
    }
}

/// The fields of a job object that the CLI shows; the full object is kept as JSON.
public struct JobSummary: Sendable, Decodable {
    public struct Progress: Sendable, Decodable {
        public var stage: String?
        public var step: Int?
        public var total: Int?
    }
    public struct Failure: Sendable, Decodable {
        public var code: String?
        public var message: String?
    }
    public var id: String
    public var state: String
    public var attempts: Int?
    public var progress: Progress?
    public var error: Failure?

    public var isTerminal: Bool { ["succeeded", "failed", "cancelled"].contains(state) }
}

/// The answer to a batch submission.
public struct BatchSubmission: Sendable, Decodable {
    public struct Accepted: Sendable, Decodable {
        public var row: Int
        public var job: String
    }
    public struct Rejected: Sendable, Decodable {
        public var row: Int
        public var column: String?
        public var message: String
    }
    public var id: String?
    public var queued: Bool
    public var accepted: [Accepted]
    public var rejected: [Rejected]
}

/// A batch's progress.
public struct BatchStatus: Sendable, Decodable {
    public struct Row: Sendable, Decodable {
        public var row: Int
        public var id: String
        public var state: String?
        public var progress: JobSummary.Progress?
        public var error: String?
    }
    public var id: String
    public var total: Int
    public var counts: [String: Int]
    public var jobs: [Row]
    public var done: Bool
    public var videosPerHour: Double?
    public var secondsLeft: Double?

    enum CodingKeys: String, CodingKey {
        case id, total, counts, jobs, done
        case videosPerHour = "videos_per_hour"
        case secondsLeft = "seconds_left"
    }
}

/// One Server-Sent Event.
public struct SSEMessage: Sendable, Equatable {
    public var event: String
    public var data: String
}

/// A client of a running `reel serve`, over HTTP.
public struct ReelAPIClient: Sendable {
    public let baseURL: String
    public var apiKey: String?
    let http: HTTPClient

    public init(baseURL: String, apiKey: String? = nil, http: HTTPClient = .shared) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.apiKey = apiKey
        self.http = http
    }

    func request(_ method: HTTPMethod, _ path: String, body: Data? = nil, headers: [(String, String)] = [])
        -> HTTPClientRequest
    {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        return request
    }

    /// Sends a request and returns the body of a 2xx answer; any other status becomes an `APIError`.
    public func send(
        _ method: HTTPMethod, _ path: String, body: Data? = nil, headers: [(String, String)] = [],
        limit: Int = 64 << 20
    ) async throws -> Data {
        let response = try await http.execute(request(method, path, body: body, headers: headers), timeout: .seconds(60))
        let buffer = try await response.body.collect(upTo: limit)
        let data = Data(buffer.readableBytesView)
        guard (200..<300).contains(Int(response.status.code)) else { throw Self.apiError(status: response.status, data) }
        return data
    }

    static func apiError(status: HTTPResponseStatus, _ data: Data) -> APIError {
        struct Envelope: Decodable {
            struct Inner: Decodable {
                var code: String?
                var message: String?
                var field: String?
            }
            var error: Inner
        }
        if let envelope = try? JSONDecoder().decode(Envelope.self, from: data) {
            return APIError(
                status: Int(status.code), code: envelope.error.code ?? "error",
                message: envelope.error.message ?? status.reasonPhrase, field: envelope.error.field)
        }
        return APIError(
            status: Int(status.code), code: "http_\(status.code)",
            message: String(decoding: data.prefix(500), as: UTF8.self))
    }

    public func submit(_ spec: [String: JSONValue], idempotencyKey: String? = nil) async throws -> (JobSummary, JSONValue) {
        let body = try JSONEncoder().encode(spec)
        let data = try await send(
            .POST, "/v1/jobs", body: body, headers: idempotencyKey.map { [("Idempotency-Key", $0)] } ?? [])
        return (try JSONDecoder().decode(JobSummary.self, from: data), try JSONDecoder().decode(JSONValue.self, from: data))
    }

    public func job(_ id: String) async throws -> (JobSummary, JSONValue) {
        let data = try await send(.GET, "/v1/jobs/\(Self.escape(id))")
        return (try JSONDecoder().decode(JobSummary.self, from: data), try JSONDecoder().decode(JSONValue.self, from: data))
    }

    public func jobs(state: String? = nil, limit: Int = 50) async throws -> [JobSummary] {
        struct Page: Decodable { var data: [JobSummary] }
        var path = "/v1/jobs?limit=\(limit)"
        if let state { path += "&state=\(Self.escape(state))" }
        return try JSONDecoder().decode(Page.self, from: try await send(.GET, path)).data
    }

    public func cancel(_ id: String) async throws -> JobSummary {
        try JSONDecoder().decode(JobSummary.self, from: try await send(.DELETE, "/v1/jobs/\(Self.escape(id))"))
    }

    public func workers() async throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: try await send(.GET, "/v1/workers"))
    }

    /// Downloads a job's video to a file.
    public func downloadVideo(_ id: String, to path: String) async throws {
        let data = try await send(.GET, "/v1/jobs/\(Self.escape(id))/video", limit: 4 << 30)
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// Downloads a job's job.json to a file.
    public func downloadMetadata(_ id: String, to path: String) async throws {
        let data = try await send(.GET, "/v1/jobs/\(Self.escape(id))/metadata")
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// Submits a CSV batch; the answer lists the accepted rows' jobs and the rejected rows.
    public func submitBatch(csv: String, atomic: Bool = false) async throws -> BatchSubmission {
        var request = request(.POST, "/v1/batches" + (atomic ? "?atomic=true" : ""))
        request.headers.replaceOrAdd(name: "Content-Type", value: "text/csv; charset=utf-8")
        request.body = .bytes(ByteBuffer(string: csv))
        let response = try await http.execute(request, timeout: .seconds(120))
        let data = Data(try await response.body.collect(upTo: 64 << 20).readableBytesView)
        guard let submission = try? JSONDecoder().decode(BatchSubmission.self, from: data) else {
            throw Self.apiError(status: response.status, data)
        }
        return submission
    }

    public func batch(_ id: String) async throws -> BatchStatus {
        try JSONDecoder().decode(BatchStatus.self, from: try await send(.GET, "/v1/batches/\(Self.escape(id))"))
    }

    public func batchReport(_ id: String) async throws -> String {
        String(decoding: try await send(.GET, "/v1/batches/\(Self.escape(id))/report.csv"), as: UTF8.self)
    }

    /// Follows `/v1/events` (optionally of one job) until the server closes it or the task is cancelled.
    public func events(job: String? = nil) -> AsyncThrowingStream<SSEMessage, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    var path = "/v1/events"
                    if let job { path += "?job=\(Self.escape(job))" }
                    let response = try await http.execute(request(.GET, path), timeout: .hours(24))
                    guard response.status == .ok else {
                        let body = try await response.body.collect(upTo: 1 << 20)
                        throw Self.apiError(status: response.status, Data(body.readableBytesView))
                    }
                    var parser = SSEParser()
                    for try await buffer in response.body {
                        for message in parser.feed(Array(buffer.readableBytesView)) { continuation.yield(message) }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    static func escape(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed.subtracting(CharacterSet(charactersIn: "/?&=+#")))
            ?? text
    }
}

/// Splits a Server-Sent Events byte stream into messages.
public struct SSEParser: Sendable {
    private var buffer: [UInt8] = []
    private var event = ""
    private var data: [String] = []

    public init() {}

    public mutating func feed(_ bytes: [UInt8]) -> [SSEMessage] {
        var messages: [SSEMessage] = []
        buffer.append(contentsOf: bytes)
        while let newline = buffer.firstIndex(of: 0x0A) {
            var line = String(decoding: buffer[..<newline], as: UTF8.self)
            buffer.removeSubrange(...newline)
            if line.hasSuffix("\r") { line.removeLast() }
            if line.isEmpty {
                if !data.isEmpty || !event.isEmpty {
                    messages.append(SSEMessage(event: event.isEmpty ? "message" : event, data: data.joined(separator: "\n")))
                }
                event = ""
                data = []
            } else if line.hasPrefix(":") {
                continue
            } else if line.hasPrefix("event:") {
                event = line.dropFirst(6).trimmingCharacters(in: .whitespaces)
            } else if line.hasPrefix("data:") {
                var value = line.dropFirst(5)
                if value.first == " " { value = value.dropFirst() }
                data.append(String(value))
            }
        }
        return messages
    }
}
