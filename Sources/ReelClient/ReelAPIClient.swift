import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ReelAPI
import ReelCore

/// An error answer of the REST API (an `ErrorBody`), or a failure to read an answer at all.
public struct APIError: Error, Sendable, CustomStringConvertible {
    public var status: Int
    public var code: String
    public var message: String
    public var field: String?

    public var description: String {
        (field.map { "\($0): " } ?? "") + message + " (\(code), HTTP \(status))"
    }
}

/// One Server-Sent Event.
public struct SSEMessage: Sendable, Equatable {
    public var event: String
    public var data: String

    /// The job update an event of `/v1/events` carries; nil for data that is not one.
    public var update: JobUpdate? { try? WireJSON.makeDecoder().decode(JobUpdate.self, from: Data(data.utf8)) }
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

    func request(
        _ method: HTTPMethod, _ path: String, body: Data? = nil, headers: [(String, String)] = []
    )
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
        try await exchange(method, path, body: body, headers: headers, limit: limit).data
    }

    private func exchange(
        _ method: HTTPMethod, _ path: String, body: Data?, headers: [(String, String)], limit: Int = 64 << 20
    ) async throws -> (status: HTTPResponseStatus, data: Data) {
        let response = try await http.execute(
            request(method, path, body: body, headers: headers), timeout: .seconds(60))
        let buffer = try await response.body.collect(upTo: limit)
        let data = Data(buffer.readableBytesView)
        guard (200..<300).contains(Int(response.status.code)) else {
            throw Self.apiError(status: response.status, data)
        }
        return (response.status, data)
    }

    /// Sends a request and decodes the body of its 2xx answer as the wire type the route answers with; a body that
    /// is not one is an `APIError` too, not a crash or a silent default.
    func call<Value: Decodable>(
        _ type: Value.Type, _ method: HTTPMethod, _ path: String, body: Data? = nil, headers: [(String, String)] = []
    ) async throws -> Value {
        let (status, data) = try await exchange(method, path, body: body, headers: headers)
        do {
            return try WireJSON.makeDecoder().decode(type, from: data)
        } catch {
            throw APIError(
                status: Int(status.code), code: "unreadable_answer",
                message: "the answer to \(method) \(path) is not the \(type) this client reads (\(error)): "
                    + String(decoding: data.prefix(300), as: UTF8.self))
        }
    }

    static func apiError(status: HTTPResponseStatus, _ data: Data) -> APIError {
        if let body = try? JSONDecoder().decode(ErrorBody.self, from: data) {
            return APIError(
                status: Int(status.code), code: body.error.code, message: body.error.message, field: body.error.field)
        }
        return APIError(
            status: Int(status.code), code: "http_\(status.code)",
            message: String(decoding: data.prefix(500), as: UTF8.self))
    }

    /// Queues a job; with `idempotencyKey`, a retry of the same submission returns the same job.
    public func submit(_ submission: JobSubmission, idempotencyKey: String? = nil) async throws -> JobResource {
        try await call(
            JobResource.self, .POST, "/v1/jobs", body: try WireJSON.makeEncoder().encode(submission),
            headers: idempotencyKey.map { [("Idempotency-Key", $0)] } ?? [])
    }

    public func job(_ id: String) async throws -> JobResource {
        try await call(JobResource.self, .GET, "/v1/jobs/\(Self.escape(id))")
    }

    /// One page of jobs, newest first; `before` is the `next` of the page before.
    public func jobs(state: JobState? = nil, limit: Int = 50, before: String? = nil) async throws -> JobPage {
        var path = "/v1/jobs?limit=\(limit)"
        if let state { path += "&state=\(state.rawValue)" }
        if let before { path += "&before=\(Self.escape(before))" }
        return try await call(JobPage.self, .GET, path)
    }

    /// Cancels a queued or running job; answers the job as the cancel left it.
    public func cancel(_ id: String) async throws -> JobResource {
        try await call(JobResource.self, .DELETE, "/v1/jobs/\(Self.escape(id))")
    }

    /// A job's stored event log, oldest first.
    public func eventLog(_ id: String) async throws -> [JobEventResource] {
        try await call(DataList<JobEventResource>.self, .GET, "/v1/jobs/\(Self.escape(id))/events").data
    }

    /// Every slot the server knows of, its own and (with a shared store) every other node's.
    public func workers() async throws -> [WorkerResource] {
        try await call(DataList<WorkerResource>.self, .GET, "/v1/workers").data
    }

    /// The prompt styles a job's `style` may name.
    public func styles() async throws -> [StyleResource] {
        try await call(DataList<StyleResource>.self, .GET, "/v1/styles").data
    }

    /// Downloads a job's video to a file.
    public func downloadVideo(_ id: String, to path: String) async throws {
        let data = try await send(.GET, "/v1/jobs/\(Self.escape(id))/video", limit: 4 << 30)
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// Downloads PNG frame `number` (from 1) of a job that kept its frames (`png_frames`) to a file.
    public func downloadFrame(_ id: String, number: Int, to path: String) async throws {
        let data = try await send(.GET, "/v1/jobs/\(Self.escape(id))/frames/\(number).png", limit: 256 << 20)
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// Downloads a job's job.json to a file.
    public func downloadMetadata(_ id: String, to path: String) async throws {
        let data = try await send(.GET, "/v1/jobs/\(Self.escape(id))/metadata")
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// Submits a CSV batch; the answer lists the accepted rows' jobs and the rejected rows, also when `atomic` and a
    /// bad row kept every row from being queued (`queued` false).
    public func submitBatch(csv: String, atomic: Bool = false) async throws -> BatchSubmitted {
        var request = request(.POST, "/v1/batches" + (atomic ? "?atomic=true" : ""))
        request.headers.replaceOrAdd(name: "Content-Type", value: "text/csv; charset=utf-8")
        request.body = .bytes(ByteBuffer(string: csv))
        let response = try await http.execute(request, timeout: .seconds(120))
        let data = Data(try await response.body.collect(upTo: 64 << 20).readableBytesView)
        guard let submission = try? WireJSON.makeDecoder().decode(BatchSubmitted.self, from: data) else {
            throw Self.apiError(status: response.status, data)
        }
        return submission
    }

    /// Stores an image on the server (`POST /v1/images`) and returns it; its `id` is what jobs name.
    public func uploadImage(
        _ bytes: [UInt8], contentType: String = "application/octet-stream"
    ) async throws
        -> ImageResource
    {
        var request = request(.POST, "/v1/images")
        request.headers.replaceOrAdd(name: "Content-Type", value: contentType)
        request.body = .bytes(ByteBuffer(bytes: bytes))
        let response = try await http.execute(request, timeout: .seconds(120))
        let data = Data(try await response.body.collect(upTo: 1 << 20).readableBytesView)
        guard (200..<300).contains(Int(response.status.code)),
            let image = try? WireJSON.makeDecoder().decode(ImageResource.self, from: data)
        else {
            throw Self.apiError(status: response.status, data)
        }
        return image
    }

    public func batch(_ id: String) async throws -> BatchResource {
        try await call(BatchResource.self, .GET, "/v1/batches/\(Self.escape(id))")
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
        text.addingPercentEncoding(
            withAllowedCharacters: .urlQueryAllowed.subtracting(CharacterSet(charactersIn: "/?&=+#")))
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
                    messages.append(
                        SSEMessage(event: event.isEmpty ? "message" : event, data: data.joined(separator: "\n")))
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
