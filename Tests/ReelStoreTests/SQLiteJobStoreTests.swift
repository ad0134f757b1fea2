import Foundation
import GRDB
import ReelCore
import Testing

@testable import ReelStore

/// What only the SQLite store promises: a file that outlives the store, durability settings, and several
/// connections (as several processes) sharing one file.
@Suite struct SQLiteJobStoreTests {
    @Test func reopeningTheFileSeesEveryJobAndEvent() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("jobs.sqlite").path
            var jobs: [Job] = []
            var events: [JobEvent] = []
            do {
                let store = try SQLiteJobStore(path: path)
                _ = try await store.enqueue(newJob("a", key: "k", digest: "d", batch: "b"), now: at(0.001))
                try await store.add("b", priority: 2, at: at(1))
                try await store.add("c", at: at(2))
                let (_, lease) = try await store.claimNext(at: at(3))
                #expect(
                    try await store.renew(
                        lease, until: at(99), progress: JobProgress(stage: "denoise", step: 4, total: 30), now: at(4)))
                let (_, done) = try await store.claimNext(at: at(5))
                #expect(try await store.complete(done, outputs: outputs(), now: at(6)))
                _ = try await store.cancel(id: "c", now: at(7))
                jobs = try await store.jobs(state: nil, limit: 10, before: nil)
                events = try await store.events(jobID: "b")
            }
            let reopened = try SQLiteJobStore(path: path)
            #expect(try await reopened.jobs(state: nil, limit: 10, before: nil) == jobs)
            #expect(try await reopened.events(jobID: "b") == events)
            #expect(try await reopened.counts() == [.queued: 0, .running: 1, .succeeded: 1, .failed: 0, .cancelled: 1])
            #expect(try await reopened.job(id: "b")?.progress == JobProgress(stage: "denoise", step: 4, total: 30))
            #expect(try await reopened.job(id: "a")?.outputs == outputs())
            // The idempotency key and its digest survive too.
            #expect(try await !reopened.enqueue(newJob("a2", key: "k", digest: "d"), now: at(8)).created)
            await #expect(throws: JobStoreError.self) {
                try await reopened.enqueue(newJob("a3", key: "k", digest: "other"), now: at(8))
            }
        }
    }

    @Test func theFileIsInWALModeAndSyncsEveryCommit() async throws {
        try await withTemporaryDirectory { directory in
            let store = try SQLiteJobStore(path: directory.appendingPathComponent("jobs.sqlite").path)
            let (journalMode, synchronous, busyTimeout, foreignKeys) = try await store.dbPool.write { db in
                (
                    try String.fetchOne(db, sql: "PRAGMA journal_mode"),
                    try Int.fetchOne(db, sql: "PRAGMA synchronous"),
                    try Int.fetchOne(db, sql: "PRAGMA busy_timeout"),
                    try Bool.fetchOne(db, sql: "PRAGMA foreign_keys")
                )
            }
            #expect(journalMode == "wal")
            #expect(synchronous == 2)  // FULL
            #expect(busyTimeout == 10_000)
            #expect(foreignKeys == true)
        }
    }

    @Test func theSchemaIsMigrationV1WithItsIndexes() async throws {
        try await withTemporaryDirectory { directory in
            let store = try SQLiteJobStore(path: directory.appendingPathComponent("jobs.sqlite").path)
            try await store.add("j1", at: at(0.25))
            let (applied, batchColumns, indexes, claimSQL, row) = try store.dbPool.read { db in
                (
                    try SQLiteJobStore.migrator.appliedIdentifiers(db),
                    try db.columns(in: "batch").map(\.name),
                    try db.indexes(on: "job"),
                    try String.fetchOne(db, sql: "SELECT sql FROM sqlite_master WHERE name = 'job_claim'"),
                    try Row.fetchOne(
                        db,
                        sql: "SELECT json_valid(spec) AS valid, json_extract(spec, '$.prompt') AS prompt, "
                            + "typeof(created_at) AS type, created_at FROM job")
                )
            }
            #expect(applied == ["v1", "v2", "v3", "v4", "v5", "v6"])
            #expect(batchColumns == ["id", "created_at", "source", "owner", "accepted", "rejected"])
            let byName = Dictionary(uniqueKeysWithValues: indexes.map { ($0.name, $0) })
            #expect(byName["job_owner_created"]?.columns == ["owner", "created_at", "id"])
            #expect(byName["job_owner_state"]?.columns == ["owner", "state"])
            #expect(byName["job_claim"]?.columns == ["state", "priority", "created_at", "id"])
            #expect(claimSQL?.contains("priority DESC") == true)
            #expect(byName["job_claim_lora"]?.columns == ["state", "lora_key", "priority", "created_at", "id"])
            #expect(byName["job_idempotency_key"]?.isUnique == true)
            #expect(byName["job_batch"]?.columns.first == "batch_id")
            // The spec is JSON text; dates are seconds since 1970.
            let spec = try #require(row)
            #expect(spec["valid"] == 1 && spec["prompt"] == makeSpec().prompt)
            #expect(spec["type"] == "real" && spec["created_at"] == at(0.25).timeIntervalSince1970)
        }
    }

    @Test func aFileOfTheSchemaBeforeGetsTheImageTableAndKeepsItsJobs() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("jobs.sqlite").path
            do {
                // The file as the version before images made it: migrations up to v4, one job.
                let queue = try DatabaseQueue(path: path)
                try SQLiteJobStore.migrator.migrate(queue, upTo: "v4")
                // The row as that version wrote it: its columns only (the record type has more now).
                let spec = String(decoding: try JSONEncoder().encode(makeSpec()), as: UTF8.self)
                try await queue.write { db in
                    try db.execute(
                        sql:
                            "INSERT INTO job (id, state, spec, priority, attempts, created_at) VALUES (?, ?, ?, 0, 0, ?)",
                        arguments: ["old", "queued", spec, t0.timeIntervalSince1970])
                }
                try queue.close()
            }
            let store = try SQLiteJobStore(path: path)
            let (applied, columns) = try await store.dbPool.read { db in
                (try SQLiteJobStore.migrator.appliedIdentifiers(db), try db.columns(in: "image").map(\.name))
            }
            #expect(applied == ["v1", "v2", "v3", "v4", "v5", "v6"])
            #expect(columns == ["sha256", "format", "bytes", "created_at", "used_at"])
            #expect(try await store.job(id: "old")?.spec == makeSpec())
            // v6: the job has no LoRAs, and an affinity claim takes it as the head.
            let key = try await store.dbPool.read { db in
                try String.fetchOne(db, sql: "SELECT lora_key FROM job WHERE id = 'old'")
            }
            #expect(key == "")
            let image = ImageReference(sha256: String(repeating: "c", count: 64), format: .jpeg, width: 4, height: 3)
            #expect(try await store.putImage(image, bytes: [0, 1, 255], now: at(1)))
            #expect(try await store.imageBytes(sha256: image.sha256) == [0, 1, 255])
        }
    }

    @Test func claimingAndListingReadTheirIndexesInOrder() async throws {
        try await withTemporaryDirectory { directory in
            let store = try SQLiteJobStore(path: directory.appendingPathComponent("jobs.sqlite").path)
            let plans = try store.dbPool.read { db in
                try [
                    JobRecord.all().claimable().limit(1),
                    JobRecord.all().filter(JobRecord.Columns.state == JobState.failed).newestFirst().limit(20),
                    JobRecord.all().newestFirst().limit(20),
                    JobRecord.filter(JobRecord.Columns.batchID == "b").oldestFirst(),
                ].map { request in
                    let statement = try request.makePreparedRequest(db).statement
                    return try Row.fetchAll(
                        db, sql: "EXPLAIN QUERY PLAN " + statement.sql, arguments: statement.arguments
                    ).map { row -> String in row["detail"] }.joined(separator: "; ")
                }
            }
            for (plan, index) in zip(plans, ["job_claim", "job_state_created", "job_created", "job_batch"]) {
                #expect(plan.contains("INDEX \(index)"), "\(plan)")
                #expect(!plan.contains("TEMP B-TREE"), "\(plan)")
            }
        }
    }

    @Test func twoStoresOnOneFileNeverClaimTheSameJob() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("jobs.sqlite").path
            let first = try SQLiteJobStore(path: path)
            let second = try SQLiteJobStore(path: path)
            let ids = (0..<200).map { String(format: "job-%03d", $0) }
            _ = try await first.enqueueAll(ids.map { newJob($0) }, now: t0)
            #expect(try await second.counts()[.queued] == 200)
            let claimed = try await claimConcurrently([first, second], claimers: 8, at: at(1))
            #expect(claimed.count == 200)
            #expect(Set(claimed) == Set(ids))
            // Each job was started exactly once.
            for id in ids.prefix(20) { #expect(try await second.eventKinds(id) == ["queued", "started"]) }
        }
    }
}
