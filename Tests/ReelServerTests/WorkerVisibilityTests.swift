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
import Synchronization
import Testing

/// `GET /v1/workers` behind API keys: every slot is listed, but a job's id only to the key that owns the job.
@Suite struct WorkerVisibilityTests {
    @Test func aKeySeesOnlyItsOwnJobsIDsOnTheSlots() async throws {
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
            try await server.application.test(.router) { client in
                let mine = try await client.createJob(key: KeyedServer.keyA)
                let theirs = try await client.createJob(key: KeyedServer.keyB)
                // Another node runs both jobs, one per slot.
                store.setNodes([
                    ClusterNode(
                        name: "gpu-2", url: "http://gpu-2:8188",
                        workers: Data(
                            (#"[{"slot": "cuda:0", "state": "busy", "job": "\#(mine)", "step": 3, "total_steps": 8},"#
                                + #"{"slot": "cuda:1", "state": "busy", "job": "\#(theirs)", "stage": "denoising", "step": 5, "#
                                + #""total_steps": 40, "steps_per_second": 0.5},"#
                                + #"{"slot": "cuda:2", "state": "ready"}]"#).utf8),
                        secondsSinceHeartbeat: 1)
                ])
                let a = try await client.call(.get, "/v1/workers", key: KeyedServer.keyA).dataList()
                #expect(a.map { $0["state"] as? String } == ["busy", "busy", "ready"])
                #expect(a[0]["job"] as? String == mine)
                #expect(a[1]["job"] is NSNull, "key A must not see key B's job id: \(a[1])")
                // Nor how far key B's job has got.
                for field in ["stage", "step", "total_steps", "steps_per_second"] {
                    #expect(a[1][field] == nil || a[1][field] is NSNull, "key A sees \(field) of key B's job: \(a[1])")
                }
                #expect(a[0]["step"] as? Int == 3 && a[0]["total_steps"] as? Int == 8)
                let b = try await client.call(.get, "/v1/workers", key: KeyedServer.keyB).dataList()
                #expect(b[0]["job"] is NSNull && b[1]["job"] as? String == theirs)
                #expect(b[0]["step"] == nil || b[0]["step"] is NSNull)
                #expect(b[1]["step"] as? Int == 5 && b[1]["stage"] as? String == "denoising")
                let text = String(buffer: try await client.call(.get, "/v1/workers", key: KeyedServer.keyA).body)
                #expect(!text.contains(theirs))
            }
        }
    }
}

/// An in-memory store that also plays a cluster directory with nodes a test sets.
final class DirectoryStore: JobStore, ClusterDirectory {
    let base = MemoryJobStore()
    private let nodeList = Mutex<[ClusterNode]>([])

    func setNodes(_ nodes: [ClusterNode]) { nodeList.withLock { $0 = nodes } }

    func heartbeat(node: String, url: String, workers: Data) async throws {}
    func nodes() async throws -> [ClusterNode] { nodeList.withLock { $0 } }
    func removeNode(_ name: String) async throws {}
    func updates() -> AsyncStream<JobUpdate> { base.updates() }
    func publish(_ update: JobUpdate) async { await base.publish(update) }
    func relayUpdates() async { await base.relayUpdates() }
    var updateSubscriberCount: Int { base.updateSubscriberCount }

    func enqueue(_ job: NewJob, now: Date) async throws -> (job: Job, created: Bool) {
        try await base.enqueue(job, now: now)
    }
    func enqueueAll(_ jobs: [NewJob], now: Date) async throws -> [Job] { try await base.enqueueAll(jobs, now: now) }
    func enqueueBatch(
        _ manifest: BatchManifest, jobs: [NewJob], now: Date
    ) async throws
        -> (manifest: BatchManifest, jobs: [Job])
    {
        try await base.enqueueBatch(manifest, jobs: jobs, now: now)
    }
    func batch(id: String) async throws -> BatchManifest? { try await base.batch(id: id) }
    func importBatch(_ manifest: BatchManifest) async throws -> Bool { try await base.importBatch(manifest) }
    func putImage(_ reference: ImageReference, bytes: [UInt8], now: Date) async throws -> Bool {
        try await base.putImage(reference, bytes: bytes, now: now)
    }
    func imageBytes(sha256: String) async throws -> [UInt8]? { try await base.imageBytes(sha256: sha256) }
    func markImageUsed(sha256: String, now: Date) async throws -> Bool {
        try await base.markImageUsed(sha256: sha256, now: now)
    }
    func deleteUnusedImages(unusedFor: TimeInterval, now: Date) async throws -> Int {
        try await base.deleteUnusedImages(unusedFor: unusedFor, now: now)
    }
    func job(id: String) async throws -> Job? { try await base.job(id: id) }
    func jobs(state: JobState?, limit: Int, before: String?) async throws -> [Job] {
        try await base.jobs(state: state, limit: limit, before: before)
    }
    func jobs(batchID: String) async throws -> [Job] { try await base.jobs(batchID: batchID) }
    func jobs(matching query: JobQuery) async throws -> [Job] { try await base.jobs(matching: query) }
    func counts(owner: String) async throws -> [JobState: Int] { try await base.counts(owner: owner) }
    func delete(id: String) async throws -> JobDeletion { try await base.delete(id: id) }
    func counts() async throws -> [JobState: Int] { try await base.counts() }
    func claim(
        owner: String, slot: String, leaseExpiresAt: Date, now: Date, affinity: ClaimAffinity?
    ) async throws -> (job: Job, lease: Lease)? {
        try await base.claim(owner: owner, slot: slot, leaseExpiresAt: leaseExpiresAt, now: now, affinity: affinity)
    }
    func renew(_ lease: Lease, until: Date, progress: JobProgress?, now: Date) async throws -> Bool {
        try await base.renew(lease, until: until, progress: progress, now: now)
    }
    func complete(_ lease: Lease, outputs: JobOutputs, now: Date) async throws -> Bool {
        try await base.complete(lease, outputs: outputs, now: now)
    }
    func fail(
        _ lease: Lease, code: String, message: String, retry: Bool, memorySaving: Bool, now: Date
    )
        async throws -> Bool
    {
        try await base.fail(lease, code: code, message: message, retry: retry, memorySaving: memorySaving, now: now)
    }
    func release(_ lease: Lease, now: Date) async throws -> Bool { try await base.release(lease, now: now) }
    func finishCancelled(_ lease: Lease, now: Date) async throws -> Bool {
        try await base.finishCancelled(lease, now: now)
    }
    func cancel(id: String, now: Date) async throws -> Job? { try await base.cancel(id: id, now: now) }
    func recoverExpired(now: Date, maxAttempts: Int) async throws -> [Job] {
        try await base.recoverExpired(now: now, maxAttempts: maxAttempts)
    }
    func recoverOwned(by owner: String, now: Date, maxAttempts: Int) async throws -> [Job] {
        try await base.recoverOwned(by: owner, now: now, maxAttempts: maxAttempts)
    }
    func events(jobID: String) async throws -> [JobEvent] { try await base.events(jobID: jobID) }
    func appendEvent(jobID: String, kind: String, message: String?, now: Date) async throws {
        try await base.appendEvent(jobID: jobID, kind: kind, message: message, now: now)
    }
}
