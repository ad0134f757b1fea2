import Foundation
import ReelCore
import ReelStore
import ReelTestSupport
import Testing

/// Jobs' owners in both stores, and migration v2 of a database made before owners existed.
@Suite struct JobOwnerStoreTests {
    enum Kind: String, CaseIterable, CustomTestStringConvertible {
        case memory, sqlite
        var testDescription: String { rawValue }
    }

    static func withStore(_ kind: Kind, _ body: (any JobStore) async throws -> Void) async throws {
        switch kind {
        case .memory: try await body(MemoryJobStore())
        case .sqlite:
            try await TestSupport.withTemporaryDirectory { directory in
                try await body(SQLiteJobStore(path: directory.appendingPathComponent("jobs.sqlite").path))
            }
        }
    }

    static let spec = GenerationSpec(
        prompt: "a fox", negativePrompt: "", width: 64, height: 64, frames: 5, fps: 24, steps: 2, guidance: 5,
        guidance2: nil, seed: 1, pngFrames: false, model: "tiny")

    static func at(_ seconds: Double) -> Date { Date(timeIntervalSince1970: 1_750_000_000 + seconds) }

    @Test(arguments: Kind.allCases) func listingsCountsAndCursorsArePerOwner(_ kind: Kind) async throws {
        try await Self.withStore(kind) { store in
            for (index, owner) in ["a", "b", "a", nil, "a"].enumerated() {
                _ = try await store.enqueue(
                    NewJob(id: "job_\(index)", spec: Self.spec, owner: owner), now: Self.at(Double(index)))
            }
            #expect(try await store.job(id: "job_0")?.owner == "a")
            #expect(try await store.job(id: "job_3")?.owner == nil)
            let ofA = try await store.jobs(matching: JobQuery(owner: "a", limit: 10)).map(\.id)
            #expect(ofA == ["job_4", "job_2", "job_0"])
            let oldest = try await store.jobs(matching: JobQuery(owner: "a", order: .oldestFirst, limit: 2)).map(\.id)
            #expect(oldest == ["job_0", "job_2"])
            let next = try await store.jobs(
                matching: JobQuery(owner: "a", order: .oldestFirst, after: "job_2", limit: 2)
            ).map(\.id)
            #expect(next == ["job_4"])
            let newer = try await store.jobs(matching: JobQuery(owner: "a", after: "job_4", limit: 10)).map(\.id)
            #expect(newer == ["job_2", "job_0"])
            let everyone = try await store.jobs(matching: JobQuery(limit: 10)).map(\.id)
            #expect(everyone == ["job_4", "job_3", "job_2", "job_1", "job_0"])
            // Another owner's job is no cursor, as an unknown id is not.
            await #expect(throws: JobStoreError.self) {
                try await store.jobs(matching: JobQuery(owner: "a", after: "job_1", limit: 10))
            }
            await #expect(throws: JobStoreError.self) {
                try await store.jobs(matching: JobQuery(owner: "a", after: "job_nope", limit: 10))
            }
            #expect(try await store.counts(owner: "a")[.queued] == 3)
            #expect(try await store.counts(owner: "b")[.queued] == 1)
            #expect(
                try await store.counts(owner: "c")
                    == Dictionary(uniqueKeysWithValues: JobState.allCases.map { ($0, 0) }))
            _ = try await store.cancel(id: "job_0", now: Self.at(10))
            #expect(try await store.counts(owner: "a")[.queued] == 2)
            #expect(try await store.counts(owner: "a")[.cancelled] == 1)
            #expect(
                try await store.jobs(matching: JobQuery(state: .cancelled, owner: "a", limit: 10)).map(\.id) == [
                    "job_0"
                ])
        }
    }

    @Test(arguments: Kind.allCases) func onlyAFinishedJobIsDeleted(_ kind: Kind) async throws {
        try await Self.withStore(kind) { store in
            _ = try await store.enqueue(
                NewJob(id: "job_a", spec: Self.spec, idempotencyKey: "k", requestDigest: "d", owner: "a"),
                now: Self.at(0))
            guard case .notFinished(let job) = try await store.delete(id: "job_a") else {
                Issue.record("a queued job was deleted")
                return
            }
            #expect(job.state == .queued)
            _ = try await store.cancel(id: "job_a", now: Self.at(1))
            guard case .deleted(let gone) = try await store.delete(id: "job_a") else {
                Issue.record("a cancelled job was not deleted")
                return
            }
            #expect(gone.id == "job_a" && gone.owner == "a")
            #expect(try await store.job(id: "job_a") == nil)
            #expect(try await store.events(jobID: "job_a").isEmpty)
            #expect(try await store.delete(id: "job_a") == .notFound)
            // Its idempotency key is free again.
            let (again, created) = try await store.enqueue(
                NewJob(id: "job_b", spec: Self.spec, idempotencyKey: "k", requestDigest: "other"), now: Self.at(2))
            #expect(created && again.id == "job_b")
        }
    }

    /// A database written by a Reel from before owners (migration v1 only, made here with Python's sqlite3 as
    /// that version's GRDB migration made it) opens, gains the column, and keeps its jobs, ownerless.
    @Test func migrationV2AddsTheOwnerToAnExistingDatabase() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("reel.sqlite").path
            let specJSON = String(decoding: try JSONEncoder().encode(Self.spec), as: UTF8.self)
            let script = """
                import sqlite3, sys
                db = sqlite3.connect(sys.argv[1])
                db.executescript('''
                CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
                INSERT INTO grdb_migrations VALUES ('v1');
                CREATE TABLE "job" ("id" TEXT PRIMARY KEY NOT NULL, "state" TEXT NOT NULL, "spec" TEXT NOT NULL,
                  "priority" INTEGER NOT NULL, "attempts" INTEGER NOT NULL, "lease_owner" TEXT, "lease_expires_at" DOUBLE,
                  "created_at" DOUBLE NOT NULL, "started_at" DOUBLE, "finished_at" DOUBLE, "error_code" TEXT,
                  "error_message" TEXT, "progress" TEXT, "outputs" TEXT, "cancel_requested" BOOLEAN NOT NULL DEFAULT 0,
                  "memory_saving" BOOLEAN NOT NULL DEFAULT 0, "idempotency_key" TEXT, "request_digest" TEXT,
                  "batch_id" TEXT, "slot" TEXT);
                CREATE INDEX job_claim ON job(state, priority DESC, created_at, id);
                CREATE TABLE "job_event" ("sequence" INTEGER PRIMARY KEY AUTOINCREMENT,
                  "job_id" TEXT NOT NULL REFERENCES "job"("id") ON DELETE CASCADE, "at" DOUBLE NOT NULL,
                  "kind" TEXT NOT NULL, "message" TEXT);
                ''')
                db.execute("INSERT INTO job (id, state, spec, priority, attempts, created_at) VALUES "
                           "('job_old', 'queued', ?, 0, 0, 1750000000.0)", (sys.argv[2],))
                db.commit()
                """
            _ = try TestSupport.runCapturing(TestSupport.engine.python, ["-c", script, path, specJSON])

            let store = try SQLiteJobStore(path: path)
            let old = try #require(try await store.job(id: "job_old"))
            #expect(old.owner == nil && old.state == .queued && old.spec == Self.spec)
            _ = try await store.enqueue(NewJob(id: "job_new", spec: Self.spec, owner: "a"), now: Self.at(5))
            #expect(try await store.jobs(matching: JobQuery(owner: "a", limit: 10)).map(\.id) == ["job_new"])
            #expect(try await store.jobs(matching: JobQuery(limit: 10)).map(\.id) == ["job_new", "job_old"])
            // Opening it again migrates nothing twice.
            let reopened = try SQLiteJobStore(path: path)
            #expect(try await reopened.job(id: "job_new")?.owner == "a")
        }
    }
}
