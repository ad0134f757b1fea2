import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ReelCore
import ReelScheduler
import ReelServer
import ReelStore
import ReelTestSupport
import ReelWorker
import Testing

/// A server with two API keys over an in-memory store and a scheduler with no slots (jobs queue, nothing runs),
/// with a data directory of its own that is removed when the test ends.
struct KeyedServer {
    static let keyA = "reel-test-key-alpha-0123456789"
    static let keyB = "reel-test-key-bravo-0123456789"
    static let wrongKey = "reel-test-key-wrong-0123456789"

    let store: any JobStore = MemoryJobStore()
    let scheduler: Scheduler
    let service: JobService
    let server: ReelServerApplication
    let dataDirectory: URL
    let keys: APIKeys

    init(
        dataDirectory: URL, keys: [String]? = [keyA, keyB], rateLimit: Int? = nil, maxQueued: Int? = nil,
        maxBodyBytes: Int = 1 << 20, maxBatchBytes: Int = 16 << 20, python: String = "python3",
        clock: ManualClock = ManualClock()
    ) throws {
        self.dataDirectory = dataDirectory
        self.keys = try APIKeys(keys: keys ?? [])
        let metrics = ReelMetricsRegistry()
        scheduler = Scheduler(
            configuration: SchedulerConfiguration(
                node: "test", slots: [], engine: EngineLocation(python: python, packageDirectory: nil), model: "tiny",
                dataDirectory: dataDirectory.path),
            store: store, metrics: metrics.schedulerMetrics, logger: TestSupport.logger)
        service = try JobService(store: store, scheduler: scheduler, maxQueuedPerOwner: maxQueued)
        var configuration = ReelServerConfiguration(
            port: 0, maxBodyBytes: maxBodyBytes, maxBatchBytes: maxBatchBytes,
            apiKeys: keys == nil ? nil : self.keys,
            rateLimitPerMinute: rateLimit)
        // The rate limit's buckets refill only when the test advances this clock, however slow the machine.
        configuration.rateLimitClock = { clock.now }
        server = ReelServerApplication(
            configuration: configuration,
            service: service, metrics: metrics, logger: TestSupport.logger)
    }

    /// The id jobs of `key` record as their owner.
    func owner(_ key: String) -> String? { keys.key(for: key)?.id }

    func test<Value>(
        _ setup: TestingSetup = .router, _ body: @Sendable (any TestClientProtocol) async throws -> Value
    ) async throws -> Value {
        try await server.application.test(setup, body)
    }

    func jobCount() async throws -> Int {
        try await store.counts().values.reduce(0, +)
    }

    /// Takes the queued job `id` through claim and complete, with real files in the scheduler's output directory
    /// for it: a video, a job.json and `frames` PNG frames (none: no frames directory).
    func succeed(
        _ id: String, video: Data = Data("not really an mp4".utf8), frames: [Data] = []
    ) async throws
        -> URL
    {
        let directory = URL(fileURLWithPath: scheduler.configuration.outputDirectory(jobID: id))
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try video.write(to: directory.appendingPathComponent("video.mp4"))
        try Data(#"{"job": "\#(id)"}"#.utf8).write(to: directory.appendingPathComponent("job.json"))
        var framesDirectory: String?
        if !frames.isEmpty {
            let url = directory.appendingPathComponent("frames")
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
            for (index, frame) in frames.enumerated() {
                try frame.write(to: url.appendingPathComponent(String(format: "%06d.png", index + 1)))
            }
            framesDirectory = url.path
        }
        // Claim jobs until this one comes up; others claimed on the way are released again.
        let now = Date()
        var others: [Lease] = []
        while true {
            let (job, lease) = try #require(
                try await store.claim(
                    owner: "test/cpu", slot: "cpu", leaseExpiresAt: now.addingTimeInterval(60), now: now))
            guard job.id == id else {
                others.append(lease)
                continue
            }
            let outputs = JobOutputs(
                directory: directory.path, video: directory.appendingPathComponent("video.mp4").path,
                metadata: directory.appendingPathComponent("job.json").path, framesDirectory: framesDirectory,
                frameCount: frames.isEmpty ? nil : frames.count, secondsPerStage: ["total": 1])
            #expect(try await store.complete(lease, outputs: outputs, now: Date()))
            for lease in others { _ = try await store.release(lease, now: Date()) }
            return directory
        }
    }
}

/// `Authorization: Bearer KEY`, or nothing.
func bearer(_ key: String?, _ extra: HTTPFields = [:]) -> HTTPFields {
    var headers = extra
    if let key { headers[.authorization] = "Bearer \(key)" }
    return headers
}

extension TestClientProtocol {
    /// A request with `key`'s bearer header and, when given, a JSON body.
    func call(
        _ method: HTTPRequest.Method, _ uri: String, key: String?, json: String? = nil
    ) async throws -> TestResponse {
        try await execute(
            uri: uri, method: method,
            headers: bearer(key, json == nil ? [:] : [.contentType: "application/json"]),
            body: json.map { ByteBuffer(string: $0) })
    }

    /// Creates a job as `key` and returns its id.
    func createJob(
        key: String?, _ json: String = #"{"prompt": "a red fox", "size": "64x64", "frames": 5}"#
    )
        async throws -> String
    {
        let response = try await call(.post, "/v1/jobs", key: key, json: json)
        guard response.status == .created, let id = try response.object()["id"] as? String else {
            throw TestFailure("creating \(json) answered \(response.status): \(String(buffer: response.body))")
        }
        return id
    }
}

extension TestResponse {
    /// The body as a JSON array of objects under `data`.
    func dataList() throws -> [[String: Any]] {
        guard let data = try object()["data"] as? [[String: Any]] else {
            throw TestFailure("no data list in \(String(buffer: body))")
        }
        return data
    }
}

/// A multipart/form-data body of text fields, then file parts, as the OpenAI SDK builds it.
struct MultipartBody {
    let boundary = "reel-boundary-\(UUID().uuidString.prefix(8))"
    var fields: [(String, String)]
    var files: [(name: String, filename: String, data: Data)] = []

    var contentType: String { "multipart/form-data; boundary=\(boundary)" }

    var buffer: ByteBuffer {
        var text = ""
        for (name, value) in fields {
            text += "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n"
        }
        var bytes = Data(text.utf8)
        for file in files {
            bytes += Data(
                ("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(file.name)\"; filename=\"\(file.filename)\"\r\n"
                    + "Content-Type: application/octet-stream\r\n\r\n").utf8)
            bytes += file.data + Data("\r\n".utf8)
        }
        bytes += Data("--\(boundary)--\r\n".utf8)
        return ByteBuffer(data: bytes)
    }
}
