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

/// A server over an in-memory store and a scheduler with no slots: jobs queue, no worker ever runs.
struct TestServer {
    let store: any JobStore = MemoryJobStore()
    let scheduler: Scheduler
    let service: JobService
    let metrics = ReelMetricsRegistry()
    let server: ReelServerApplication

    /// - Parameter dataDirectory: the scheduler's data directory (where old batch manifest files are imported from);
    ///   by default one all these servers share.
    init(
        configuration: ReelServerConfiguration = ReelServerConfiguration(port: 0), dataDirectory: String? = nil,
        model: String = "tiny", imageLimits: ImageLimits = .standard, loraDirectory: String? = nil,
        recipeLoRAs: [String: RecipeLoRAs] = [:]
    ) throws {
        var schedulerConfiguration = SchedulerConfiguration(
            node: "test", slots: [], engine: EngineLocation(python: "python3", packageDirectory: nil), model: model,
            dataDirectory: dataDirectory
                ?? FileManager.default.temporaryDirectory.appendingPathComponent("reel-server-tests").path)
        schedulerConfiguration.imageLimits = imageLimits
        schedulerConfiguration.loraDirectory = loraDirectory
        scheduler = Scheduler(
            configuration: schedulerConfiguration, store: store, metrics: metrics.schedulerMetrics,
            logger: TestSupport.logger)
        service = try JobService(store: store, scheduler: scheduler, recipeLoRAs: recipeLoRAs)
        server = ReelServerApplication(
            configuration: configuration, service: service, metrics: metrics, logger: TestSupport.logger)
    }

    func test<Value>(
        _ setup: TestingSetup = .router, _ body: @Sendable (any TestClientProtocol) async throws -> Value
    ) async throws -> Value {
        try await server.application.test(setup, body)
    }

    /// The number of jobs in the store, whatever their state.
    func jobCount() async throws -> Int {
        try await store.counts().values.reduce(0, +)
    }
}

let idempotencyKey = HTTPField.Name("Idempotency-Key")!

extension TestClientProtocol {
    /// POSTs a job spec given as JSON text.
    func submit(_ json: String, key: String? = nil) async throws -> TestResponse {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let key { headers[idempotencyKey] = key }
        return try await execute(uri: "/v1/jobs", method: .post, headers: headers, body: ByteBuffer(string: json))
    }

    /// Submits a job and returns its id.
    func submitJob(_ json: String = #"{"prompt": "a red fox"}"#) async throws -> String {
        let response = try await submit(json)
        guard response.status == .created, let id = try response.object()["id"] as? String else {
            throw TestFailure("submitting \(json) answered \(response.status): \(String(buffer: response.body))")
        }
        return id
    }
}

extension TestResponse {
    /// The body as a JSON object.
    func object() throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any] else {
            throw TestFailure("not a JSON object: \(String(buffer: body))")
        }
        return object
    }

    /// The `error` object of an error response.
    func apiError() throws -> [String: Any] {
        guard let error = try object()["error"] as? [String: Any] else {
            throw TestFailure("no error object in \(String(buffer: body))")
        }
        return error
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
