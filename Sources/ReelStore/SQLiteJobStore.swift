import Foundation
import GRDB
import ReelCore

/// The durable `JobStore`: one SQLite file, opened through a GRDB `DatabasePool` in WAL mode.
///
/// Durability: WAL with `PRAGMA synchronous = FULL`. GRDB's pool default, NORMAL, is consistent after a crash but
/// may lose the last transactions committed before a power loss, because it syncs the WAL only at checkpoints.
/// FULL syncs the WAL on every commit, so once `enqueue` (or any other write) has returned, the job survives a
/// `kill -9` of the process and a power loss of the machine: an accepted job must never be lost, and a few
/// milliseconds per write is cheap next to a video generation.
///
/// Several processes may share one file (a node's scheduler and a `reel` command, say): every write transaction
/// is `BEGIN IMMEDIATE`, and a busy timeout makes a writer wait for another one instead of failing with
/// `SQLITE_BUSY`. Every method is one transaction, so a claim is atomic across processes too.
public final class SQLiteJobStore: JobStore {
    /// The pool, through which every read and write throws `JobStoreError`s for a full, locked or failed database.
    let dbPool: SQLitePool
    let feed = UpdateFeed()

    /// Opens the database at `path`, creating the file if needed, and brings its schema up to date.
    ///
    /// - Parameter busyTimeout: how long a write waits for another connection (usually another process) to
    ///   finish its own before it fails.
    public init(path: String, busyTimeout: TimeInterval = 10) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeout)
        configuration.label = "ReelStore"
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
        } catch let error as DatabaseError {
            throw SQLitePool.storeError(error)
        }
        dbPool = SQLitePool(pool: pool)
        // Only the writer connection writes. It is set here rather than in `prepareDatabase` because opening a pool
        // sets NORMAL on it after `prepareDatabase` has run.
        try dbPool.barrierWriteWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        do {
            try Self.migrator.migrate(pool)
        } catch {
            // Two processes opening a new file at once both see no migration applied; the second one's CREATE
            // TABLE fails once the first has committed. Migrating again sees the schema in place.
            do {
                try Self.migrator.migrate(pool)
            } catch let error as DatabaseError {
                throw SQLitePool.storeError(error)
            }
        }
    }

    public func enqueue(_ job: NewJob, now: Date) async throws -> (job: Job, created: Bool) {
        try await writing { db, outbox in try Self.insert(job, now: now, db, outbox) }
    }

    public func enqueueAll(_ jobs: [NewJob], now: Date) async throws -> [Job] {
        try await writing { db, outbox in try jobs.map { try Self.insert($0, now: now, db, outbox).job } }
    }

    public func enqueueBatch(
        _ manifest: BatchManifest, jobs: [NewJob], now: Date
    ) async throws
        -> (manifest: BatchManifest, jobs: [Job])
    {
        try await writing { db, outbox in
            guard try !BatchRecord.exists(db, key: manifest.id) else { throw JobStoreError.duplicateBatch(manifest.id) }
            var stored = manifest
            stored.createdAt = now.storedPrecision
            try BatchRecord(stored).insert(db)
            let added = try jobs.map { job in
                var job = job
                job.batchID = manifest.id
                return try Self.insert(job, now: now, db, outbox).job
            }
            return (stored, added)
        }
    }

    public func batch(id: String) async throws -> BatchManifest? {
        try await dbPool.read { db in try BatchRecord.fetchOne(db, key: id)?.manifest }
    }

    public func importBatch(_ manifest: BatchManifest) async throws -> Bool {
        try await dbPool.write { db in
            guard try !BatchRecord.exists(db, key: manifest.id) else { return false }
            try BatchRecord(manifest).insert(db)
            return true
        }
    }

    public func putImage(_ reference: ImageReference, bytes: [UInt8], now: Date) async throws -> Bool {
        let seconds = now.storedPrecision.timeIntervalSince1970
        return try await dbPool.write { db in
            try db.execute(
                sql: "UPDATE image SET used_at = ? WHERE sha256 = ?", arguments: [seconds, reference.sha256])
            guard db.changesCount == 0 else { return false }
            try db.execute(
                sql: "INSERT INTO image (sha256, format, bytes, created_at, used_at) VALUES (?, ?, ?, ?, ?)",
                arguments: [reference.sha256, reference.format.rawValue, Data(bytes), seconds, seconds])
            return true
        }
    }

    public func imageBytes(sha256: String) async throws -> [UInt8]? {
        try await dbPool.read { db in
            try Data.fetchOne(db, sql: "SELECT bytes FROM image WHERE sha256 = ?", arguments: [sha256]).map(Array.init)
        }
    }

    public func markImageUsed(sha256: String, now: Date) async throws -> Bool {
        let seconds = now.storedPrecision.timeIntervalSince1970
        return try await dbPool.write { db in
            try db.execute(sql: "UPDATE image SET used_at = ? WHERE sha256 = ?", arguments: [seconds, sha256])
            return db.changesCount > 0
        }
    }

    public func deleteUnusedImages(unusedFor: TimeInterval, now: Date) async throws -> Int {
        let cutoff = now.addingTimeInterval(-unusedFor).timeIntervalSince1970
        return try await dbPool.write { db in
            // One statement, in a write transaction (SQLite has one writer at a time): the images a job names are
            // read once, as a set (an uncorrelated subquery), not once per image.
            try db.execute(
                sql: """
                    DELETE FROM image WHERE used_at < ? AND sha256 NOT IN (
                        SELECT json_extract(spec, '$.image.sha256') FROM job
                        WHERE json_extract(spec, '$.image.sha256') IS NOT NULL
                        UNION
                        SELECT json_extract(spec, '$.lastImage.sha256') FROM job
                        WHERE json_extract(spec, '$.lastImage.sha256') IS NOT NULL)
                    """, arguments: [cutoff])
            return db.changesCount
        }
    }

    public func updates() -> AsyncStream<JobUpdate> { feed.subscribe() }

    public var updateSubscriberCount: Int { feed.subscriberCount }

    public func publish(_ update: JobUpdate) async { feed.publish(update) }

    /// Every update of this store is made in this process.
    public func relayUpdates() async {}

    /// One write transaction; the updates it logs are published once it has committed.
    private func writing<T: Sendable>(_ body: @escaping @Sendable (Database, Outbox) throws -> T) async throws -> T {
        let outbox = Outbox()
        let result = try await dbPool.write { db in try body(db, outbox) }
        feed.publish(outbox.updates)
        return result
    }

    public func job(id: String) async throws -> Job? {
        try await dbPool.read { db in try JobRecord.fetchOne(db, key: id)?.job }
    }

    public func jobs(state: JobState?, limit: Int, before: String?) async throws -> [Job] {
        guard limit > 0 else { return [] }
        return try await dbPool.read { db in
            var request = JobRecord.all()
            if let state { request = request.filter(JobRecord.Columns.state == state) }
            if let before {
                guard let cursor = try JobRecord.fetchOne(db, key: before) else {
                    throw JobStoreError.unknownCursor(before)
                }
                request = request.listed(after: cursor)
            }
            return try request.newestFirst().limit(limit).fetchAll(db).map(\.job)
        }
    }

    public func jobs(batchID: String) async throws -> [Job] {
        try await dbPool.read { db in
            try JobRecord.filter(JobRecord.Columns.batchID == batchID).oldestFirst().fetchAll(db).map(\.job)
        }
    }

    public func jobs(matching query: JobQuery) async throws -> [Job] {
        guard query.limit > 0 else { return [] }
        return try await dbPool.read { db in
            var request = JobRecord.all()
            if let state = query.state { request = request.filter(JobRecord.Columns.state == state) }
            if let owner = query.owner { request = request.filter(JobRecord.Columns.owner == owner) }
            if let after = query.after {
                // Another owner's job is no cursor: its existence is not this owner's to learn.
                guard let cursor = try JobRecord.fetchOne(db, key: after),
                    query.owner == nil || cursor.owner == query.owner
                else { throw JobStoreError.unknownCursor(after) }
                request =
                    query.order == .newestFirst
                    ? request.listed(after: cursor) : request.listedOldestFirst(after: cursor)
            }
            request = query.order == .newestFirst ? request.newestFirst() : request.oldestFirst()
            return try request.limit(query.limit).fetchAll(db).map(\.job)
        }
    }

    public func counts(owner: String) async throws -> [JobState: Int] {
        try await dbPool.read { db in
            try Self.counts(
                Row.fetchAll(
                    db, sql: "SELECT state, COUNT(*) AS n FROM job WHERE owner = ? GROUP BY state",
                    arguments: [owner]))
        }
    }

    public func delete(id: String) async throws -> JobDeletion {
        try await dbPool.write { db in
            guard let record = try JobRecord.fetchOne(db, key: id) else { return .notFound }
            guard record.state.isTerminal else { return .notFinished(record.job) }
            try JobEventRecord.filter(JobEventRecord.Columns.jobID == id).deleteAll(db)
            try JobRecord.deleteOne(db, key: id)
            return .deleted(record.job)
        }
    }

    public func counts() async throws -> [JobState: Int] {
        try await dbPool.read { db in
            try Self.counts(Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS n FROM job GROUP BY state"))
        }
    }

    /// Counts by state from rows of `state` and `n`, with every state a key.
    private static func counts(_ rows: [Row]) throws -> [JobState: Int] {
        var counts = Dictionary(uniqueKeysWithValues: JobState.allCases.map { ($0, 0) })
        for row in rows {
            let name: String = row["state"]
            guard let state = JobState(rawValue: name) else {
                throw JobStoreError(.corrupt, "table job holds an unknown state \"\(name)\"")
            }
            counts[state] = row["n"]
        }
        return counts
    }

    public func claim(
        owner: String, slot: String, leaseExpiresAt: Date, now: Date, affinity: ClaimAffinity?
    ) async throws -> (
        job: Job, lease: Lease
    )? {
        // One IMMEDIATE transaction reads the head of the queue and takes it, so no other connection can take the
        // same job in between.
        try await writing { db, outbox in
            guard let head = try JobRecord.all().claimable().fetchOne(db) else { return nil }
            let record = try affinity.map { try Self.affine(head: head, $0, now: now, db) } ?? head
            var job = record.job
            let (lease, event) = job.start(owner: owner, slot: slot, leaseExpiresAt: leaseExpiresAt, now: now)
            try Self.save(job, replacing: record, event: event, now: now, db, outbox)
            return (job, lease)
        }
    }

    /// The job a claimer holding `affinity` takes when `head` is the head of the queue (see `ClaimAffinity`),
    /// marking the jobs it passes over.
    private static func affine(
        head: JobRecord, _ affinity: ClaimAffinity, now: Date, _ db: Database
    ) throws
        -> JobRecord
    {
        guard !affinity.takesHead(headKey: head.loraKey) else { return head }
        typealias Columns = JobRecord.Columns
        guard
            let candidate = try JobRecord.all().claimable()
                .filter(Columns.loraKey == affinity.loraKey && Columns.priority == head.priority).fetchOne(db)
        else { return head }
        let created = candidate.createdAt.databaseSeconds
        let ahead = JobRecord.all().filter(
            Columns.state == JobState.queued && Columns.priority == head.priority
                && (Columns.createdAt < created || (Columns.createdAt == created && Columns.id < candidate.id)))
        let oldest = try Double.fetchOne(db, ahead.select(min(Columns.passedOverAt)))
        guard
            affinity.mayPassOver(oldestPassedOver: oldest.map { Date(timeIntervalSince1970: $0) }, now: now)
        else { return head }
        try ahead.filter(Columns.passedOverAt == nil).updateAll(db, Columns.passedOverAt.set(to: now.databaseSeconds))
        return candidate
    }

    public func renew(_ lease: Lease, until: Date, progress: JobProgress?, now: Date) async throws -> Bool {
        try await update(lease, now: now) { job in
            job.renew(until: until, progress: progress)
            return nil
        }
    }

    public func complete(_ lease: Lease, outputs: JobOutputs, now: Date) async throws -> Bool {
        try await update(lease, now: now) { $0.succeed(outputs: outputs, now: now) }
    }

    public func fail(
        _ lease: Lease, code: String, message: String, retry: Bool, memorySaving: Bool, now: Date
    )
        async throws -> Bool
    {
        try await update(lease, now: now) {
            $0.fail(code: code, message: message, retry: retry, memorySaving: memorySaving, now: now)
        }
    }

    public func release(_ lease: Lease, now: Date) async throws -> Bool {
        try await update(lease, now: now) { $0.release(now: now) }
    }

    public func finishCancelled(_ lease: Lease, now: Date) async throws -> Bool {
        try await update(lease, now: now) { $0.finishCancelled(now: now) }
    }

    public func cancel(id: String, now: Date) async throws -> Job? {
        try await writing { db, outbox in
            guard let record = try JobRecord.fetchOne(db, key: id) else { return nil }
            var job = record.job
            if let event = job.cancel(now: now) {
                try Self.save(job, replacing: record, event: event, now: now, db, outbox)
            }
            return job
        }
    }

    public func recoverExpired(now: Date, maxAttempts: Int) async throws -> [Job] {
        try await writing { db, outbox in
            let expiresAt = JobRecord.Columns.leaseExpiresAt
            let expired = try JobRecord.all().running()
                .filter(expiresAt == nil || expiresAt < now.databaseSeconds)
                .inClaimOrder()
                .fetchAll(db)
            return try Self.recover(expired, maxAttempts: maxAttempts, now: now, db, outbox) { job in
                "the lease of \(job.leaseOwner ?? "?") expired"
            }
        }
    }

    public func recoverOwned(by owner: String, now: Date, maxAttempts: Int) async throws -> [Job] {
        try await writing { db, outbox in
            // Running jobs are few (one per GPU slot), and matching in Swift keeps the owner test exactly the
            // in-memory store's, with no LIKE wildcards to escape.
            let owned = try JobRecord.all().running().inClaimOrder().fetchAll(db)
                .filter { $0.job.isOwned(by: owner) }
            return try Self.recover(owned, maxAttempts: maxAttempts, now: now, db, outbox) { job in
                "\(job.leaseOwner ?? owner) restarted"
            }
        }
    }

    public func events(jobID: String) async throws -> [JobEvent] {
        try await dbPool.read { db in
            try JobEventRecord.filter(JobEventRecord.Columns.jobID == jobID)
                .order(JobEventRecord.Columns.sequence)
                .fetchAll(db)
                .map(\.event)
        }
    }

    public func appendEvent(jobID: String, kind: String, message: String?, now: Date) async throws {
        try await writing { db, outbox in
            guard let record = try JobRecord.fetchOne(db, key: jobID) else { throw JobStoreError.unknownJob(jobID) }
            try Self.log(PendingEvent(kind: kind, message: message), for: record.job, now: now, db, outbox)
        }
    }
}

extension SQLiteJobStore {
    private static func insert(
        _ new: NewJob, now: Date, _ db: Database, _ outbox: Outbox
    ) throws
        -> (job: Job, created: Bool)
    {
        if let key = new.idempotencyKey,
            let existing = try JobRecord.filter(JobRecord.Columns.idempotencyKey == key).fetchOne(db)
        {
            guard existing.requestDigest == new.requestDigest else {
                throw JobStoreError.idempotencyConflict(key: key, jobID: existing.id)
            }
            return (existing.job, false)
        }
        guard try !JobRecord.exists(db, key: new.id) else { throw JobStoreError.duplicateID(new.id) }
        let job = Job(new, now: now)
        try JobRecord(job, requestDigest: new.requestDigest).insert(db)
        try log(PendingEvent(.queued), for: job, now: now, db, outbox)
        return (job, true)
    }

    /// Applies `change` to the job `lease` names, in one write transaction, if the lease is current.
    private func update(
        _ lease: Lease, now: Date, _ change: @escaping @Sendable (inout Job) -> PendingEvent?
    )
        async throws -> Bool
    {
        try await writing { db, outbox in
            guard let record = try JobRecord.fetchOne(db, key: lease.jobID), record.job.isHeld(by: lease) else {
                return false
            }
            var job = record.job
            let event = change(&job)
            try Self.save(job, replacing: record, event: event, now: now, db, outbox)
            return true
        }
    }

    private static func recover(
        _ records: [JobRecord], maxAttempts: Int, now: Date, _ db: Database, _ outbox: Outbox,
        because why: (Job) -> String
    ) throws -> [Job] {
        try records.map { record in
            var job = record.job
            let event = job.recover(because: why(job), maxAttempts: maxAttempts, now: now)
            try save(job, replacing: record, event: event, now: now, db, outbox)
            return job
        }
    }

    /// Writes the columns of `job` that differ from `record`, and logs `event`.
    private static func save(
        _ job: Job, replacing record: JobRecord, event: PendingEvent?, now: Date, _ db: Database, _ outbox: Outbox
    ) throws {
        try JobRecord(job, requestDigest: record.requestDigest).updateChanges(db, from: record)
        if let event { try log(event, for: job, now: now, db, outbox) }
    }

    /// Logs `event` of `job` (as the change left it) and keeps its update for after the commit.
    private static func log(_ event: PendingEvent, for job: Job, now: Date, _ db: Database, _ outbox: Outbox) throws {
        var record = JobEventRecord(jobID: job.id, event: event, at: now)
        try record.insert(db)
        outbox.updates.append(JobUpdate(kind: event.kind, message: event.message, job: job, at: now.storedPrecision))
    }

    /// The updates of one write transaction. Used only on GRDB's writer queue, one transaction at a time.
    final class Outbox: @unchecked Sendable {
        var updates: [JobUpdate] = []
    }
}

extension SQLiteJobStore: TransferableJobStore {
    public func exportJobs(after: String?, limit: Int) async throws -> [StoredJob] {
        try await dbPool.read { db in
            var request = JobRecord.all()
            if let after { request = request.filter(JobRecord.Columns.id > after) }
            return try request.order(JobRecord.Columns.id).limit(limit).fetchAll(db).map { record in
                let events = try JobEventRecord.filter(JobEventRecord.Columns.jobID == record.id)
                    .order(JobEventRecord.Columns.sequence).fetchAll(db).map(\.event)
                return StoredJob(job: record.job, requestDigest: record.requestDigest, events: events)
            }
        }
    }

    public func exportBatches(after: String?, limit: Int) async throws -> [BatchManifest] {
        try await dbPool.read { db in
            var request = BatchRecord.all()
            if let after { request = request.filter(BatchRecord.Columns.id > after) }
            return try request.order(BatchRecord.Columns.id).limit(limit).fetchAll(db).map(\.manifest)
        }
    }

    public func importJobs(_ jobs: [StoredJob], batches: [BatchManifest]) async throws {
        try await dbPool.write { db in
            for manifest in batches {
                guard try !BatchRecord.exists(db, key: manifest.id) else {
                    throw JobStoreError.duplicateBatch(manifest.id)
                }
                try BatchRecord(manifest).insert(db)
            }
            for stored in jobs {
                guard try !JobRecord.exists(db, key: stored.job.id) else {
                    throw JobStoreError.duplicateID(stored.job.id)
                }
                try JobRecord(stored.job, requestDigest: stored.requestDigest).insert(db)
                for event in stored.events {
                    var record = JobEventRecord(
                        sequence: nil, jobID: event.jobID, at: event.at.storedPrecision, kind: event.kind,
                        message: event.message)
                    try record.insert(db)
                }
            }
        }
    }

    public func jobCount() async throws -> Int {
        try await dbPool.read { db in try JobRecord.fetchCount(db) }
    }

    public func batchCount() async throws -> Int {
        try await dbPool.read { db in try BatchRecord.fetchCount(db) }
    }

    public func exportImages(after: String?, limit: Int) async throws -> [StoredImage] {
        try await dbPool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT sha256, bytes FROM image WHERE sha256 > ? ORDER BY sha256 LIMIT ?",
                arguments: [after ?? "", limit]
            ).map { row in StoredImage(sha256: row["sha256"], bytes: Array(row["bytes"] as Data)) }
        }
    }
}
