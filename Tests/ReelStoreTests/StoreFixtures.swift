import Foundation
import ReelCore
import ReelTestSupport
import Testing

@testable import ReelStore

/// The stores the shared suite runs against.
///
/// `postgres` keeps the caller's clock (`TimeSource.caller`), as the suite's fixed clock needs; PostgresStoreTests
/// checks the database's clock, which `reel serve` uses, on its own.
enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case memory, sqlite, postgres

    var testDescription: String { rawValue }
}

/// Runs `body` with a fresh, empty store of `kind`; a SQLite store lives in a temporary directory, a PostgreSQL one
/// in a new database on the test server (see `TestPostgres`), both removed afterwards.
func withStore(_ kind: StoreKind, _ body: (any JobStore) async throws -> Void) async throws {
    switch kind {
    case .memory:
        try await body(MemoryJobStore())
    case .sqlite:
        try await withTemporaryDirectory { directory in
            try await body(SQLiteJobStore(path: directory.appendingPathComponent("jobs.sqlite").path))
        }
    case .postgres:
        try await TestPostgres.withDatabase { url in
            let store = try await PostgresJobStore(url: url, timeSource: .caller)
            do {
                try await body(store)
                await store.close()
            } catch {
                await store.close()
                throw error
            }
        }
    }
}

/// A fresh directory that is removed when `body` ends.
func withTemporaryDirectory(_ body: (URL) async throws -> Void) async throws {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("reel-store-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: url) }
    try await body(url)
}

/// A fixed clock: tests pass these instead of sleeping.
let t0 = at(0)

/// `seconds` after a fixed instant, counted since 1970 as the stores keep dates.
func at(_ seconds: Double) -> Date { Date(timeIntervalSince1970: 1_750_000_000 + seconds) }

func makeSpec(_ prompt: String = "a red fox running through snow", seed: UInt64 = 7) -> GenerationSpec {
    GenerationSpec(
        prompt: prompt, negativePrompt: "blurry", width: 832, height: 480, frames: 81, fps: 16, steps: 30,
        guidance: 5.0, guidance2: 3.5, seed: seed, pngFrames: false, model: "Wan-AI/Wan2.2-T2V-A14B-Diffusers")
}

func newJob(
    _ id: String, priority: Int = 0, key: String? = nil, digest: String? = nil, batch: String? = nil,
    spec: GenerationSpec = makeSpec()
) -> NewJob {
    NewJob(id: id, spec: spec, priority: priority, idempotencyKey: key, requestDigest: digest, batchID: batch)
}

let node = "node-a"
let slot0 = "node-a/cuda:0"
let slot1 = "node-a/cuda:1"

extension JobStore {
    /// Enqueues a job that must be new.
    @discardableResult
    func add(_ id: String, priority: Int = 0, batch: String? = nil, at now: Date = t0) async throws -> Job {
        let (job, created) = try await enqueue(newJob(id, priority: priority, batch: batch), now: now)
        #expect(created)
        return job
    }

    /// Claims the next job, which must exist, for `owner` with a lease of `seconds`.
    func claimNext(
        owner: String = slot0, slot: String = slot0, at now: Date, for seconds: Double = 60
    )
        async throws -> (job: Job, lease: Lease)
    {
        try #require(await claim(owner: owner, slot: slot, leaseExpiresAt: now.addingTimeInterval(seconds), now: now))
    }

    /// Claims every queued job, one at a time, and returns their ids in claim order.
    func drain(at now: Date) async throws -> [String] {
        var ids: [String] = []
        while let (job, _) = try await claim(owner: slot0, slot: slot0, leaseExpiresAt: now + 60, now: now) {
            ids.append(job.id)
        }
        return ids
    }

    func eventKinds(_ id: String) async throws -> [String] {
        try await events(jobID: id).map(\.kind)
    }

    func state(_ id: String) async throws -> JobState? {
        try await job(id: id)?.state
    }
}

/// `count` claimers racing on `stores` (round robin) until the queue is empty; returns every claimed id.
func claimConcurrently(_ stores: [any JobStore], claimers count: Int, at now: Date) async throws -> [String] {
    try await withThrowingTaskGroup(of: [String].self) { group in
        for index in 0..<count {
            let store = stores[index % stores.count]
            group.addTask {
                var ids: [String] = []
                while let (job, _) = try await store.claim(
                    owner: "node-\(index)/cuda:0", slot: "node-\(index)/cuda:0", leaseExpiresAt: now + 60, now: now)
                {
                    ids.append(job.id)
                }
                return ids
            }
        }
        return try await group.reduce(into: []) { $0 += $1 }
    }
}
