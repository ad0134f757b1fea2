import Foundation
import ReelCore
import ReelStore
import ReelTestSupport
import Testing

/// `reel migrate-store` moving a node's SQLite queue (and its batches) into a PostgreSQL database, run as the real
/// command.
@Suite struct MigrateStoreTests {
    static func spec(_ prompt: String) -> GenerationSpec {
        GenerationSpec(
            prompt: prompt, negativePrompt: "blurry", width: 32, height: 32, frames: 5, fps: 16, steps: 2,
            guidance: 5.0, guidance2: nil, seed: 7, pngFrames: false, model: "tiny")
    }

    @Test func aSQLiteQueueMovesToPostgresWithItsHistoryAndKeys() async throws {
        try await TestPostgres.withDatabase { url in
            try await TestSupport.withTemporaryDirectory { directory in
                let path = directory.appendingPathComponent("reel.sqlite").path
                let sqlite = try SQLiteJobStore(path: path)
                let now = Date(timeIntervalSince1970: 1_790_000_000.25)
                _ = try await sqlite.enqueue(
                    NewJob(
                        id: "job-done", spec: Self.spec("a kite"), priority: 2, idempotencyKey: "k1",
                        requestDigest: "d1"),
                    now: now)
                let manifest = BatchManifest(
                    id: "b1", createdAt: now, source: "csv", accepted: [.init(row: 2, job: "job-running")],
                    rejected: [.init(row: 3, column: "seed", message: "'x' is not a whole number")], owner: "key-1")
                let batch = try await sqlite.enqueueBatch(
                    manifest, jobs: [NewJob(id: "job-running", spec: Self.spec("a boat"))], now: now + 1
                ).manifest
                _ = try await sqlite.enqueue(
                    NewJob(id: "job-queued", spec: Self.spec("a tree"), owner: "key-1"), now: now + 2)
                let (_, lease) = try #require(
                    await sqlite.claim(owner: "old/cpu", slot: "cpu", leaseExpiresAt: now + 60, now: now + 3))
                #expect(
                    try await sqlite.complete(
                        lease,
                        outputs: JobOutputs(
                            directory: "/out/job-done", video: "/out/job-done/video.mp4",
                            metadata: "/out/job-done/job.json"),
                        now: now + 4))
                _ = try #require(
                    await sqlite.claim(owner: "old/cpu", slot: "cpu", leaseExpiresAt: now + 60, now: now + 5))
                let before = try await sqlite.exportJobs(after: nil, limit: 10)
                let image = try ImageStore(directory: directory.appendingPathComponent("images")).put(
                    ImageFixtures.png3x2)
                #expect(try await sqlite.putImage(image, bytes: ImageFixtures.png3x2, now: now))

                let run = try TestSupport.runReel(["migrate-store", "--from", path, "--to", url], in: directory)
                #expect(run.status == 0, "\(run.stderr)")
                #expect(run.stdout.contains("copied 3 jobs, 7 events, 1 batch and 1 image"), "\(run.stdout)")
                #expect(run.stdout.contains("1 running job was queued again: job-running"), "\(run.stdout)")

                let postgres = try await PostgresJobStore(url: url, timeSource: .caller)
                let after = try await postgres.exportJobs(after: nil, limit: 10)
                #expect(after.map(\.job.id) == ["job-done", "job-queued", "job-running"])
                for (old, new) in zip(before, after) where old.job.id != "job-running" {
                    #expect(new.job == old.job && new.requestDigest == old.requestDigest)
                    #expect(
                        new.events.map(\.kind) == old.events.map(\.kind) && new.events.map(\.at) == old.events.map(\.at)
                    )
                }
                let moved = try #require(after.last)
                #expect(moved.job.state == .queued && moved.job.attempts == 0 && moved.job.leaseOwner == nil)
                #expect(moved.events.map(\.kind) == ["queued", "started", "requeued"])
                // The batch comes along: its manifest as it was, its job still its.
                #expect(try await postgres.batch(id: "b1") == batch)
                #expect(moved.job.batchID == "b1")
                // So do the images, which every node of the cluster reads from the database.
                #expect(try await postgres.imageBytes(sha256: image.sha256) == ImageFixtures.png3x2)
                // The moved queue is live: its idempotency keys hold, and its queued jobs are claimed in order.
                let again = try await postgres.enqueue(
                    NewJob(id: "other", spec: Self.spec("a kite"), idempotencyKey: "k1", requestDigest: "d1"),
                    now: Date())
                #expect(!again.created && again.job.id == "job-done")
                let claimed = try await postgres.claim(
                    owner: "n/cpu", slot: "cpu", leaseExpiresAt: Date() + 60, now: Date())
                #expect(claimed?.job.id == "job-running")
                await postgres.close()

                // A second run finds the target in use and changes nothing.
                let twice = try TestSupport.runReel(["migrate-store", "--from", path, "--to", url], in: directory)
                #expect(twice.status != 0)
                #expect(
                    twice.stderr.contains("already holds 3 jobs and 1 batch;") && twice.stderr.contains("empty"),
                    "\(twice.stderr)")
                // A bad URL names the option.
                let bad = try TestSupport.runReel(
                    ["migrate-store", "--from", path, "--to", "postgres://db/reel"], in: directory)
                #expect(bad.status != 0 && bad.stderr.contains("--to") && bad.stderr.contains("user"), "\(bad.stderr)")
            }
        }
    }
}
