import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ReelAPI
import ReelClient
import ReelCore
import ReelScheduler
import ReelStore
import ReelTestSupport
import ReelWorker
import Testing

@testable import ReelServer

/// The server's answers read through `ReelAPIClient` and the `ReelAPI` wire types give back what the server meant:
/// each value equal to the one the server builds from its store, and every key of the raw answer kept (the decoded
/// value encodes back to the same JSON).
@Suite struct WireRoundTripTests {
    /// `value` as a client reads it: encoded as the server writes it, then decoded (dates to the millisecond).
    static func onTheWire<Value: Codable>(_ value: Value) throws -> Value {
        try WireJSON.makeDecoder().decode(Value.self, from: WireJSON.makeEncoder().encode(value))
    }

    /// Records an issue unless `decoded` encodes back to `raw`: no key dropped or added, no value changed.
    static func expectLossless(
        _ decoded: some Encodable, _ raw: Data, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let back = try WireJSON.makeEncoder().encode(decoded)
        let (left, right) = (
            try JSONSerialization.jsonObject(with: back) as? NSObject,
            try JSONSerialization.jsonObject(with: raw) as? NSObject
        )
        #expect(
            left != nil && left == right,
            "\(String(decoding: back, as: UTF8.self))\n  is not what the server sent:\n\(String(decoding: raw, as: UTF8.self))",
            sourceLocation: sourceLocation)
    }

    @Test func jobsSubmittedThroughTheClientComeBackAsTheStoreHasThem() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try KeyedServer(dataDirectory: directory)
            try await server.test(.live) { client in
                let api = ReelAPIClient(
                    baseURL: "http://127.0.0.1:\(try #require(client.port))", apiKey: KeyedServer.keyA)
                let seed = UInt64(Int64.max)
                let submission = JobSubmission(
                    prompt: "a red fox", style: "cinematic", size: "64x64", frames: 5, steps: 2, guidance: 4.5,
                    seed: seed, pngFrames: true, priority: 7, interpolate: 2)
                let submitted = try await api.submit(submission, idempotencyKey: "round-trip")
                let stored = try #require(try await server.store.job(id: submitted.id))
                #expect(stored.spec.seed == seed && submitted.spec.seed == seed, "the seed arrives to the last digit")
                #expect(abs(submitted.createdAt.timeIntervalSince(stored.createdAt)) < 0.001)
                #expect(submitted == (try Self.onTheWire(JobResource(stored))))
                #expect(try await api.submit(submission, idempotencyKey: "round-trip") == submitted, "a replay")

                // A succeeded job (outputs), a running one (progress) and a cancelled one, read one by one and as a page.
                _ = try await server.succeed(submitted.id, frames: [Data("png".utf8)])
                let running = try await api.submit(JobSubmission(prompt: "a running hare", seed: 3)).id
                let now = Date()
                let (_, lease) = try #require(
                    try await server.store.claim(
                        owner: "test/cpu", slot: "cpu", leaseExpiresAt: now.addingTimeInterval(60), now: now))
                #expect(
                    try await server.store.renew(
                        lease, until: now.addingTimeInterval(60),
                        progress: JobProgress(stage: "denoising", step: 3, total: 8), now: now))
                let cancelled = try await api.cancel(try await api.submit(JobSubmission(prompt: "a stopped owl")).id)
                #expect(cancelled.state == .cancelled)
                for id in [submitted.id, running, cancelled.id] {
                    let job = try await api.job(id)
                    #expect(job == (try Self.onTheWire(JobResource(try #require(try await server.store.job(id: id))))))
                    try Self.expectLossless(job, try await api.send(.GET, "/v1/jobs/\(id)"))
                }
                #expect(
                    try await api.job(running).progress == .init(stage: "denoising", step: 3, total: 8, percent: 37.5))
                #expect(try await api.job(submitted.id).outputs?.frameCount == 1)

                let page = try await api.jobs(limit: 2)
                #expect(page.data.map(\.id) == [cancelled.id, running] && page.next == running)
                try Self.expectLossless(page, try await api.send(.GET, "/v1/jobs?limit=2"))
                let rest = try await api.jobs(limit: 2, before: page.next)
                #expect(rest.data.map(\.id) == [submitted.id] && rest.next == nil)
                #expect(try await api.jobs(state: .running).data.map(\.id) == [running])

                let events = try await api.eventLog(submitted.id)
                let storedEvents = try await server.store.events(jobID: submitted.id)
                #expect(events == (try storedEvents.map { try Self.onTheWire(JobEventResource($0)) }))
                try Self.expectLossless(
                    DataList(data: events), try await api.send(.GET, "/v1/jobs/\(submitted.id)/events"))

                let styles = try await api.styles()
                #expect(styles.contains { $0.name == "cinematic" })
                try Self.expectLossless(DataList(data: styles), try await api.send(.GET, "/v1/styles"))

                // An error answer is the error body, read as an APIError.
                let missing = await #expect(throws: ReelClient.APIError.self) { try await api.job("job_missing") }
                #expect(missing?.status == 404 && missing?.code == "not_found")
            }
        }
    }

    @Test func aBatchSubmittedThroughTheClientComesBackRowByRow() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try KeyedServer(dataDirectory: directory)
            try await server.test(.live) { client in
                let api = ReelAPIClient(
                    baseURL: "http://127.0.0.1:\(try #require(client.port))", apiKey: KeyedServer.keyA)
                let csv = "prompt,size,seed\r\na kite,64x64,9223372036854775807\r\na bad kite,65x64,1\r\n"
                let submitted = try await api.submitBatch(csv: csv)
                let id = try #require(submitted.id)
                #expect(submitted.queued && submitted.error == nil)
                #expect(submitted.accepted.map(\.row) == [2])
                #expect(submitted.rejected.map(\.row) == [3] && submitted.rejected.first?.column == "size")
                let job = try #require(try await server.store.job(id: submitted.accepted[0].job))
                #expect(job.batchID == id && job.spec.seed == UInt64(Int64.max))

                let batch = try await api.batch(id)
                #expect(batch.id == id && batch.total == 2 && batch.count(.queued) == 1 && !batch.done)
                #expect(
                    batch.jobs == [.init(row: 2, id: job.id, state: .queued, progress: nil, videoURL: nil, error: nil)])
                #expect(batch.rejected == submitted.rejected)
                try Self.expectLossless(batch, try await api.send(.GET, "/v1/batches/\(id)"))

                // atomic=true with a bad row queues nothing and says why, in the same shape.
                let refused = try await api.submitBatch(csv: csv, atomic: true)
                #expect(!refused.queued && refused.id == nil && refused.accepted.isEmpty)
                #expect(refused.error?.code == "invalid_value" && refused.error?.field == "size")
            }
        }
    }

    @Test func aSlotListingRoundTripsWithWithheldJobsAndOtherNodes() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let store = DirectoryStore()
            let keys = try APIKeys(keys: [KeyedServer.keyA, KeyedServer.keyB])
            let metrics = ReelMetricsRegistry()
            let scheduler = Scheduler(
                configuration: SchedulerConfiguration(
                    node: "test", slots: [], engine: EngineLocation(python: "python3", packageDirectory: nil),
                    model: "tiny", dataDirectory: directory.path),
                store: store, metrics: metrics.schedulerMetrics, logger: TestSupport.logger)
            let server = ReelServerApplication(
                configuration: ReelServerConfiguration(port: 0, apiKeys: keys),
                service: try JobService(store: store, scheduler: scheduler), metrics: metrics,
                logger: TestSupport.logger)
            try await server.application.test(.live) { client in
                let mine = try await client.createJob(key: KeyedServer.keyA)
                let theirs = try await client.createJob(key: KeyedServer.keyB)
                store.setNodes([
                    ClusterNode(
                        name: "gpu-2", url: "http://gpu-2:8188",
                        workers: Data(
                            (#"[{"slot": "cuda:0", "node": "gpu-2", "state": "busy", "job": "\#(mine)", "step": 3,"#
                                + #" "total_steps": 8, "stage": "denoising", "steps_per_second": 1.25,"#
                                + #" "free_memory_bytes": 81604378624, "since": "2025-06-01T12:00:00.123Z"},"#
                                + #"{"slot": "cuda:1", "state": "busy", "job": "\#(theirs)"},"#
                                + #"{"slot": "cuda:2", "state": "ready", "ranks": [{"rank": 0, "device": "cuda:2"}]}]"#)
                                .utf8),
                        secondsSinceHeartbeat: 61.27)
                ])
                let api = ReelAPIClient(
                    baseURL: "http://127.0.0.1:\(try #require(client.port))", apiKey: KeyedServer.keyA)
                let slots = try await api.workers()
                #expect(slots.map(\.slot) == ["cuda:0", "cuda:1", "cuda:2"])
                #expect(slots.map(\.job) == [mine, nil, nil] && slots.map(\.jobWithheld) == [false, true, false])
                #expect(
                    slots.allSatisfy { $0.node == "gpu-2" && $0.nodeURL == "http://gpu-2:8188" && $0.stale == true })
                #expect(slots[0].step == 3 && slots[0].totalSteps == 8 && slots[0].freeMemoryBytes == 81_604_378_624)
                #expect(slots[0].heartbeatAgeSeconds == 61.3 && slots[0].since == "2025-06-01T12:00:00.123Z")
                try Self.expectLossless(DataList(data: slots), try await api.send(.GET, "/v1/workers"))
            }
        }
    }
}
