import Foundation
import PostgresNIO
import ReelCore
import ReelTestSupport
import Synchronization
import Testing

@testable import ReelStore

/// What only the PostgreSQL store promises: the database's clock, several nodes on one database, wake-ups through
/// LISTEN/NOTIFY, and claims that a lost connection cannot leave half done. Against the real server of
/// `$REEL_TEST_POSTGRES_URL`.
@Suite struct PostgresStoreTests {
    /// Two stores on one database, as two nodes would have.
    func withTwoNodes(
        timeSource: PostgresJobStore.TimeSource = .database,
        _ body: (PostgresJobStore, PostgresJobStore, String) async throws -> Void
    ) async throws {
        try await TestPostgres.withDatabase { url in
            let a = try await PostgresJobStore(url: url, timeSource: timeSource)
            let b = try await PostgresJobStore(url: url, timeSource: timeSource)
            defer {
                Task {
                    await a.close(); await b.close()
                }
            }
            try await body(a, b, url)
        }
    }

    @Test func datesAndLeaseExpiryFollowTheDatabaseClockNotTheNodes() async throws {
        try await withTwoNodes { a, b, _ in
            // Node a's clock is a day behind; node b's a day ahead.
            let behind = Date().addingTimeInterval(-86_400)
            let ahead = Date().addingTimeInterval(86_400)
            let job = try await a.enqueue(newJob("j1"), now: behind).job
            #expect(abs(job.createdAt.timeIntervalSinceNow) < 5, "createdAt is the database's time, not node a's")

            let (claimed, _) = try #require(
                await a.claim(owner: slot0, slot: slot0, leaseExpiresAt: behind + 1.5, now: behind))
            let expiry = try #require(claimed.leaseExpiresAt)
            #expect(abs(expiry.timeIntervalSince(try #require(claimed.startedAt)) - 1.5) < 0.01)
            #expect(abs(expiry.timeIntervalSinceNow - 1.5) < 5)

            // Node b, whose clock is ahead, sees the lease as the database does: alive.
            #expect(try await b.recoverExpired(now: ahead, maxAttempts: 3).isEmpty)
            #expect(try await b.state("j1") == .running)
            // Once 1.5 s have passed by the database's clock, it has expired, even for node a, whose clock is behind.
            try await Task.sleep(for: .milliseconds(1700))
            let recovered = try await a.recoverExpired(now: behind + 2, maxAttempts: 3)
            #expect(recovered.map(\.id) == ["j1"])
            #expect(try await b.state("j1") == .queued)
            #expect(try await b.eventKinds("j1") == ["queued", "started", "requeued"])
        }
    }

    @Test func aRenewedLeaseLastsByTheDatabaseClock() async throws {
        try await withTwoNodes { a, b, _ in
            try await a.add("j1")
            let skewed = Date().addingTimeInterval(-3_600)
            let (_, lease) = try #require(
                await a.claim(owner: slot0, slot: slot0, leaseExpiresAt: skewed + 1, now: skewed))
            #expect(try await a.renew(lease, until: skewed + 60, progress: nil, now: skewed))
            try await Task.sleep(for: .milliseconds(1200))
            // The first lease would have ended by now; the renewed one holds for a minute of database time.
            #expect(try await b.recoverExpired(now: Date().addingTimeInterval(3_600), maxAttempts: 3).isEmpty)
            let job = try #require(await b.job(id: "j1"))
            #expect(abs(try #require(job.leaseExpiresAt).timeIntervalSinceNow - 58.8) < 5)
        }
    }

    @Test func twoNodesClaimingAtOnceNeverShareAJob() async throws {
        try await withTwoNodes { a, b, _ in
            let ids = (0..<300).map { String(format: "job-%03d", $0) }
            _ = try await a.enqueueAll(ids.map { newJob($0) }, now: Date())
            let claimed = try await claimConcurrently([a, b], claimers: 12, at: Date())
            #expect(claimed.count == 300)
            #expect(Set(claimed) == Set(ids))
            #expect(try await b.counts()[.running] == 300)
            for id in ids.prefix(20) { #expect(try await a.eventKinds(id) == ["queued", "started"]) }
        }
    }

    /// A row another connection holds past the lock timeout fails the statement as `busy` (a 503 with
    /// Retry-After at the API), promptly, and changes nothing.
    @Test func aRowLockedPastTheLockTimeoutIsBusyNotAHang() async throws {
        try await TestPostgres.withDatabase { url in
            let store = try await PostgresJobStore(
                location: PostgresLocation(url: url), timeSource: .database, logger: nil, beforeClaimCommit: nil,
                lockTimeout: .milliseconds(500))
            try await store.add("held", at: Date())
            // Another session locks the job's row and keeps its transaction open.
            let holder = try await PostgresConnection.connect(
                configuration: try PostgresLocation(url: url).connectionConfiguration(), id: 99,
                logger: TestSupport.logger)
            try await holder.query("BEGIN", logger: TestSupport.logger)
            try await holder.query("SELECT id FROM job WHERE id = 'held' FOR UPDATE", logger: TestSupport.logger)
            let started = ContinuousClock.now
            let error = await #expect(throws: JobStoreError.self) { try await store.cancel(id: "held", now: Date()) }
            #expect(error?.code == .busy, "\(String(describing: error))")
            #expect(ContinuousClock.now - started < .seconds(20), "it waited for the lock timeout, not for ever")
            try await holder.query("ROLLBACK", logger: TestSupport.logger)
            try await holder.close()
            #expect(try await store.job(id: "held")?.state == .queued)
            #expect(try await store.cancel(id: "held", now: Date())?.state == .cancelled)
            await store.close()
        }
    }

    @Test func aConnectionDroppedDuringAClaimLeavesTheJobQueued() async throws {
        try await TestPostgres.withDatabase { url in
            let other = try await PostgresJobStore(url: url)
            let admin = try #require(TestPostgres.url)
            let sawLocked = Mutex<Bool?>(nil)
            let claims = Atomic<Int>(0)
            // Inside the claim, after its UPDATE and before its COMMIT: another node finds the job locked and
            // passes over it; then the server drops this claim's connection.
            let dropping = try await PostgresJobStore(
                location: PostgresLocation(url: url), timeSource: .database, logger: nil,
                beforeClaimCommit: { pid in
                    guard claims.add(1, ordering: .relaxed).newValue == 1 else { return }
                    let competing = try? await other.claim(
                        owner: "node-b/cpu", slot: "cpu", leaseExpiresAt: Date() + 60, now: Date())
                    sawLocked.withLock { $0 = competing == nil }
                    try? await TestPostgres.admin(admin, "SELECT pg_terminate_backend(\(pid))")
                })
            try await other.add("j1", at: Date())

            // The lost connection is a store error a client can act on (503 with Retry-After), not a bare 500.
            let lost = await #expect(throws: JobStoreError.self) {
                try await dropping.claim(owner: "node-a/cpu", slot: "cpu", leaseExpiresAt: Date() + 60, now: Date())
            }
            #expect(lost?.code == .unavailable, "\(String(describing: lost))")
            #expect(sawLocked.withLock { $0 } == true, "SKIP LOCKED: the other node did not wait for the claim")
            let job = try #require(await other.job(id: "j1"))
            #expect(job.state == .queued && job.attempts == 0 && job.leaseOwner == nil && job.node == nil)
            #expect(try await other.eventKinds("j1") == ["queued"])

            // The job is there for the next claim, and the store whose connection dropped works on.
            let (again, lease) = try #require(
                await dropping.claim(owner: "node-a/cpu", slot: "cpu", leaseExpiresAt: Date() + 60, now: Date()))
            #expect(again.id == "j1" && lease.attempt == 1 && again.node == "node-a")
            await dropping.close()
            await other.close()
        }
    }

    @Test func everyNodeHearsEveryNodesUpdatesInOrderAfterTheyCommit() async throws {
        try await withTwoNodes { a, b, _ in
            let heard = Mutex<[String]>([])
            let updates = b.updates()
            let relay = Task { await b.relayUpdates() }
            let listener = Task {
                for await update in updates {
                    heard.withLock { $0.append("\(update.job) \(update.kind) \(update.state.rawValue)") }
                }
            }
            defer {
                relay.cancel()
                listener.cancel()
            }
            // Once b hears its own probe, its listener is in place.
            try await hear(probe: "listening", from: b, heard: heard)
            heard.withLock { $0.removeAll() }
            try await a.add("j1", at: Date())
            let (_, lease) = try #require(
                await a.claim(owner: slot0, slot: slot0, leaseExpiresAt: Date() + 60, now: Date()))
            await a.publish(
                JobUpdate(
                    kind: .progress, job: "j1", state: .running, attempt: 1,
                    progress: JobProgress(stage: "denoising", step: 1, total: 2), owner: "tenant-1"))
            #expect(try await a.fail(lease, code: "x", message: "y", retry: true, memorySaving: false, now: Date()))
            try await waitUntil("node b hears node a's four updates") { heard.withLock { $0.count } >= 4 }
            #expect(
                heard.withLock { $0 } == [
                    "j1 queued queued", "j1 started running", "j1 progress running", "j1 requeued queued",
                ])
            // A transaction that rolls back (a duplicate id) announces nothing: the next thing heard is a later probe.
            await #expect(throws: (any Error).self) { try await a.add("j1", at: Date()) }
            try await hear(probe: "after the rollback", from: a, heard: heard)
            // The probe is sent every 50 ms until heard, so a loaded machine may hear it more than once; nothing else.
            let rest = heard.withLock { Array($0.dropFirst(4)) }
            #expect(!rest.isEmpty && rest.allSatisfy { $0 == "after the rollback progress running" }, "\(rest)")
        }
    }

    /// Publishes a progress update for job `probe` from `store` until `heard` has it (at most 5 s).
    func hear(probe: String, from store: PostgresJobStore, heard: borrowing Mutex<[String]>) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while !heard.withLock({ $0.contains { $0.hasPrefix(probe + " ") } }) {
            guard ContinuousClock.now < deadline else {
                Issue.record("the probe \(probe) was never heard")
                return
            }
            await store.publish(JobUpdate(kind: .progress, job: probe, state: .running))
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Polls `condition` every 20 ms for up to 5 s.
    func waitUntil(_ what: String, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while !condition() {
            guard ContinuousClock.now < deadline else {
                Issue.record("no wake-up within 5 s after \(what)")
                return
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    @Test func nodesSeeEachOthersHeartbeatsAgedByTheDatabase() async throws {
        try await withTwoNodes { a, b, _ in
            try await a.heartbeat(node: "node-a", url: "http://10.0.0.1:8188", workers: Data(#"[{"slot":"cpu"}]"#.utf8))
            try await b.heartbeat(node: "node-b", url: "http://10.0.0.2:8188", workers: Data("[]".utf8))
            try await Task.sleep(for: .milliseconds(300))
            try await b.heartbeat(node: "node-b", url: "http://10.0.0.2:9000", workers: Data("[]".utf8))
            let nodes = try await b.nodes()
            #expect(nodes.map(\.name) == ["node-a", "node-b"])
            #expect(nodes[0].url == "http://10.0.0.1:8188" && nodes[1].url == "http://10.0.0.2:9000")
            #expect(String(decoding: nodes[0].workers, as: UTF8.self) == #"[{"slot":"cpu"}]"#)
            #expect(nodes[0].secondsSinceHeartbeat >= 0.3 && nodes[0].secondsSinceHeartbeat < 5)
            #expect(nodes[1].secondsSinceHeartbeat < nodes[0].secondsSinceHeartbeat)
            try await a.removeNode("node-a")
            #expect(try await b.nodes().map(\.name) == ["node-b"])
        }
    }

    @Test func nodesStartingAtOnceMigrateOnceAndANewerSchemaIsRefused() async throws {
        try await TestPostgres.withDatabase { url in
            let started = await withTaskGroup(of: Result<PostgresJobStore, any Error>.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        do { return .success(try await PostgresJobStore(url: url)) } catch { return .failure(error) }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            let stores = started.compactMap { try? $0.get() }
            // A store dropped unclosed trips postgres-nio's assertion: close those that started before failing.
            if let failure = started.first(where: { (try? $0.get()) == nil }), case .failure(let error) = failure {
                for store in stores { await store.close() }
                throw error
            }
            try await stores[0].add("j1")
            #expect(try await stores[3].job(id: "j1") != nil)
            for store in stores { await store.close() }

            try await TestPostgres.admin(url, "INSERT INTO reel_migration (id) VALUES ('v99')")
            let error = await #expect(throws: (any Error).self) { try await PostgresJobStore(url: url) }
            #expect("\(error!)".contains("v99") && "\(error!)".contains("newer"))
        }
    }

    @Test func aDatabaseOfTheSchemaBeforeGetsTheImageTableAndKeepsItsJobs() async throws {
        try await TestPostgres.withDatabase { url in
            // The database as the version before images made it: migrations v1 and v2, one job.
            try await TestPostgres.admin(
                url, "CREATE TABLE reel_migration (id text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
            for migration in PostgresJobStore.migrations.prefix(while: { $0.id != "v3" }) {
                for statement in migration.statements { try await TestPostgres.admin(url, statement) }
                try await TestPostgres.admin(url, "INSERT INTO reel_migration (id) VALUES ('\(migration.id)')")
            }
            let doc = try PostgresJobStore.encode(Job(newJob("old"), now: t0))
            try await TestPostgres.admin(
                url,
                "INSERT INTO job (id, state, priority, created_at, doc) VALUES ('old', 'queued', 0, "
                    + "\(t0.timeIntervalSince1970), '\(doc.replacingOccurrences(of: "'", with: "''"))')")

            let store = try await PostgresJobStore(url: url, timeSource: .caller)
            defer { Task { await store.close() } }
            let (applied, columns) = try await store.connections.withConnection { connection in
                var applied: [String] = []
                for try await id in try await connection.rows(
                    "SELECT id FROM reel_migration ORDER BY id", logger: store.logger
                ).decode(String.self) {
                    applied.append(id)
                }
                var columns: [String] = []
                for try await (name, type) in try await connection.rows(
                    """
                    SELECT column_name, data_type FROM information_schema.columns
                    WHERE table_name = 'image' ORDER BY ordinal_position
                    """, logger: store.logger
                ).decode((String, String).self) {
                    columns.append("\(name) \(type)")
                }
                return (applied, columns)
            }
            #expect(applied == ["v1", "v2", "v3", "v4"])
            #expect(
                columns == [
                    "sha256 text", "format text", "bytes bytea", "created_at timestamp with time zone",
                    "used_at timestamp with time zone",
                ])
            #expect(try await store.job(id: "old")?.spec == makeSpec())
            let image = ImageReference(sha256: String(repeating: "c", count: 64), format: .jpeg, width: 4, height: 3)
            #expect(try await store.putImage(image, bytes: [0, 1, 255], now: at(1)))
            #expect(try await store.putImage(image, bytes: [0, 1, 255], now: at(2)) == false)
            #expect(try await store.imageBytes(sha256: image.sha256) == [0, 1, 255])
        }
    }

    @Test func imagesAgeByTheDatabaseClockNotTheNodes() async throws {
        try await withTwoNodes { a, b, _ in
            let image = ImageReference(sha256: String(repeating: "d", count: 64), format: .png, width: 3, height: 2)
            // Node a's clock is a day behind; node b's a day ahead: to the database, the image is new.
            #expect(try await a.putImage(image, bytes: [9], now: Date().addingTimeInterval(-86_400)))
            #expect(try await b.deleteUnusedImages(unusedFor: 3600, now: Date().addingTimeInterval(86_400)) == 0)
            #expect(try await b.imageBytes(sha256: image.sha256) == [9])
            try await Task.sleep(for: .milliseconds(1200))
            #expect(try await a.deleteUnusedImages(unusedFor: 1, now: Date().addingTimeInterval(-86_400)) == 1)
            #expect(try await b.imageBytes(sha256: image.sha256) == nil)
        }
    }

    @Test func aBadURLOrAnUnreachableServerIsAClearError() async throws {
        for (url, words) in [
            ("mysql://u@h/db", "scheme"), ("postgres://h/db", "user"), ("postgres://u@h", "database name"),
            ("postgres://u@h/db?sslmode=maybe", "sslmode"), ("postgres://u@h/db?foo=1", "foo"),
        ] {
            let error = #expect(throws: PostgresStoreError.self) { try PostgresLocation(url: url) }
            #expect(error?.message.contains(words) == true, "\(url): \(error?.message ?? "")")
        }
        let location = try PostgresLocation(url: "postgres://me:s3cret@db.example:6543/reel?sslmode=require")
        #expect(location.host == "db.example" && location.port == 6543 && location.database == "reel")
        #expect(location.user == "me" && location.password == "s3cret" && location.tls == .require)
        #expect(!location.redacted.contains("s3cret"))

        _ = try TestPostgres.requireURL()
        // Nothing listens on port 1 of loopback.
        let error = await #expect(throws: PostgresStoreError.self) {
            try await PostgresJobStore(url: "postgres://reel:pw@127.0.0.1:1/reel")
        }
        #expect(error?.message.contains("127.0.0.1:1") == true && error?.message.contains("pw") == false)
    }
}
