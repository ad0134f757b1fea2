import Foundation
import Logging
import PostgresNIO
import ReelCore

/// The `JobStore` several `reel serve` nodes share: one PostgreSQL database, through postgres-nio's connection pool.
///
/// - Claims lock the head of the queue with `FOR UPDATE SKIP LOCKED`: two nodes claiming at once take different jobs
///   and never wait for each other. Every method is one transaction; a connection lost before its `COMMIT` changes
///   nothing, so a claim cut off half-way leaves the job queued.
/// - Every change a transaction logs is also announced with `NOTIFY reel_job_updates`, delivered at its commit;
///   `relayUpdates` listens and publishes every node's updates to `updates()`, so every node's event stream shows
///   every job's, and idle slots on every node wake as soon as any node queues a job.
/// - Time: with `TimeSource.database` (what `reel serve` uses), every date the store writes comes from the database's
///   `clock_timestamp()`, and a lease the caller asks for "until T" lasts `T - now` by the database's clock. Nodes'
///   clocks may differ; only durations cross from a node to the database, so a node whose clock runs ahead cannot take
///   another node's live job, and claim order (oldest first) is one order for every node.
///   `TimeSource.caller` keeps the caller's dates, as the other stores do (for the shared store tests, which step a
///   fixed clock).
public final class PostgresJobStore: JobStore, ClusterDirectory {
    /// Whose clock dates come from.
    public enum TimeSource: Sendable {
        /// The database's `clock_timestamp()`; a caller's `now` only sets the length of the leases it asks for.
        case database
        /// The caller's `now`, verbatim.
        case caller
    }

    /// The channel every committed change and every progress report is announced on, to every node (`JobUpdate` as
    /// JSON, with the job's owner).
    static let updatesChannel = "reel_job_updates"

    let connections: PostgresConnections
    let timeSource: TimeSource
    /// The updates every node announced, as this node's `LISTEN` (`relayUpdates`) hears them.
    let feed = UpdateFeed()
    let logger: Logger
    /// Called inside a claim's transaction after its `UPDATE`, before `COMMIT`, with the connection's backend pid:
    /// lets a test cut the connection at that very point.
    let beforeClaimCommit: (@Sendable (Int32) async -> Void)?

    /// Connects to the database `url` names (see `PostgresLocation`), and brings its schema up to date.
    public convenience init(url: String, timeSource: TimeSource = .database, logger: Logger? = nil) async throws {
        try await self.init(
            location: PostgresLocation(url: url), timeSource: timeSource, logger: logger, beforeClaimCommit: nil)
    }

    /// `lockTimeout`: how long a statement waits for a row another connection holds before it fails (answered 503
    /// with Retry-After). Every statement is also limited to a minute, and a transaction left open and idle (by a
    /// node that hung mid-way) is ended after a minute, so no request and no node waits on another for ever.
    init(
        location: PostgresLocation, timeSource: TimeSource, logger: Logger?,
        beforeClaimCommit: (@Sendable (Int32) async -> Void)?, lockTimeout: Duration = .seconds(10)
    ) async throws {
        var logger = logger ?? Logger(label: "reel.store.postgres")
        logger[metadataKey: "database"] = "\(location.redacted)"
        // postgres-nio's own chatter is noise; failures reach the caller as errors.
        var connectionLogger = logger
        connectionLogger.logLevel = .error
        var configuration: PostgresConnection.Configuration
        do {
            configuration = try location.connectionConfiguration()
        } catch {
            throw PostgresLocation.explain(error, connecting: location)
        }
        configuration.options.connectTimeout = .seconds(10)
        let lockMilliseconds = lockTimeout.components.seconds * 1000 + lockTimeout.components.attoseconds / 1_000_000_000_000_000
        configuration.options.additionalStartupParameters = [
            ("lock_timeout", "\(max(1, lockMilliseconds))ms"), ("statement_timeout", "60s"),
            ("idle_in_transaction_session_timeout", "60s"),
        ]
        let connections = PostgresConnections(configuration: configuration, maximum: 16, logger: connectionLogger)
        self.connections = connections
        self.timeSource = timeSource
        self.logger = logger
        self.beforeClaimCommit = beforeClaimCommit
        // The first connection fails at once with the server's reason (no such database, wrong password…).
        do {
            // Raw errors: PostgresLocation.explain words them for the person who typed the URL.
            try await connections.withConnection(rawErrors: true) { connection in
                try await Self.migrate(connection, logger: logger)
            }
        } catch {
            await connections.close()
            throw PostgresLocation.explain(error, connecting: location)
        }
    }

    /// Closes every connection; the store is unusable afterwards. Call it before letting go of a store (a debug build
    /// asserts that no PostgreSQL connection is dropped open).
    public func close() async {
        await connections.close()
    }

    // MARK: Adding and reading jobs

    public func enqueue(_ job: NewJob, now: Date) async throws -> (job: Job, created: Bool) {
        try await retryingUniqueViolations {
            try await self.transaction { connection in
                let moment = try await self.moment(now, connection)
                return try await self.insert(job, at: moment.now, connection)
            }
        }
    }

    public func enqueueAll(_ jobs: [NewJob], now: Date) async throws -> [Job] {
        try await retryingUniqueViolations {
            try await self.transaction { connection in
                let moment = try await self.moment(now, connection)
                var added: [Job] = []
                for job in jobs { added.append(try await self.insert(job, at: moment.now, connection).job) }
                return added
            }
        }
    }

    public func job(id: String) async throws -> Job? {
        try await fetchJobs("SELECT doc::text, request_digest FROM job WHERE id = \(id)").first?.job
    }

    public func jobs(state: JobState?, limit: Int, before: String?) async throws -> [Job] {
        try await jobs(matching: JobQuery(state: state, order: .newestFirst, after: before, limit: limit))
    }

    public func jobs(batchID: String) async throws -> [Job] {
        try await fetchJobs(
            "SELECT doc::text, request_digest FROM job WHERE batch_id = \(batchID) ORDER BY created_at, id"
        ).map(\.job)
    }

    public func jobs(matching query: JobQuery) async throws -> [Job] {
        guard query.limit > 0 else { return [] }
        return try await transaction { connection in
            var sql = "SELECT doc::text, request_digest FROM job WHERE true"
            var binds = PostgresBindings()
            if let state = query.state {
                binds.append(state.rawValue)
                sql += " AND state = $\(binds.count)"
            }
            if let owner = query.owner {
                binds.append(owner)
                sql += " AND owner = $\(binds.count)"
            }
            if let after = query.after {
                // Another owner's job is no cursor: its existence is not this owner's to learn.
                guard
                    let cursor = try await self.fetchJobs(
                        "SELECT doc::text, request_digest FROM job WHERE id = \(after)", connection
                    ).first?.job,
                    query.owner == nil || cursor.owner == query.owner
                else { throw JobStoreError.unknownCursor(after) }
                binds.append(cursor.createdAt.timeIntervalSince1970)
                let seconds = binds.count
                binds.append(cursor.id)
                let id = binds.count
                let comparison = query.order == .newestFirst ? "<" : ">"
                sql +=
                    " AND (created_at \(comparison) $\(seconds) OR (created_at = $\(seconds) AND id \(comparison) $\(id)))"
            }
            sql += query.order == .newestFirst ? " ORDER BY created_at DESC, id DESC" : " ORDER BY created_at, id"
            binds.append(query.limit)
            sql += " LIMIT $\(binds.count)"
            return try await self.fetchJobs(PostgresQuery(unsafeSQL: sql, binds: binds), connection).map(\.job)
        }
    }

    public func counts(owner: String) async throws -> [JobState: Int] {
        try await counts("SELECT state, count(*) FROM job WHERE owner = \(owner) GROUP BY state")
    }

    public func counts() async throws -> [JobState: Int] {
        try await counts("SELECT state, count(*) FROM job GROUP BY state")
    }

    public func delete(id: String) async throws -> JobDeletion {
        try await transaction { connection in
            guard let job = try await self.lockJob(id, connection)?.job else { return .notFound }
            guard job.state.isTerminal else { return .notFinished(job) }
            // The events go with the job (ON DELETE CASCADE).
            try await connection.run("DELETE FROM job WHERE id = \(id)", logger: self.logger)
            return .deleted(job)
        }
    }

    // MARK: Leases

    public func claim(owner: String, slot: String, leaseExpiresAt: Date, now: Date) async throws -> (
        job: Job, lease: Lease
    )? {
        try await transaction { connection in
            // SKIP LOCKED: a row another transaction is claiming (or changing) right now is passed over, not waited
            // for, so concurrent claimers each take the next free job.
            let rows = try await self.fetchJobs(
                """
                SELECT doc::text, request_digest FROM job WHERE state = 'queued'
                ORDER BY priority DESC, created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED
                """, connection)
            guard let (record, digest) = rows.first.map({ ($0.job, $0.digest) }) else { return nil }
            let moment = try await self.moment(now, connection)
            var job = record
            let (lease, event) = job.start(
                owner: owner, slot: slot, leaseExpiresAt: moment.shifted(leaseExpiresAt), now: moment.now)
            try await self.save(job, digest: digest, event: event, at: moment.now, connection)
            if let beforeClaimCommit = self.beforeClaimCommit {
                await beforeClaimCommit(try await self.backendPID(connection))
            }
            return (job, lease)
        }
    }

    public func renew(_ lease: Lease, until: Date, progress: JobProgress?, now: Date) async throws -> Bool {
        try await update(lease, now: now) { job, moment in
            job.renew(until: moment.shifted(until), progress: progress)
            return nil
        }
    }

    public func complete(_ lease: Lease, outputs: JobOutputs, now: Date) async throws -> Bool {
        try await update(lease, now: now) { job, moment in job.succeed(outputs: outputs, now: moment.now) }
    }

    public func fail(_ lease: Lease, code: String, message: String, retry: Bool, memorySaving: Bool, now: Date)
        async throws -> Bool
    {
        try await update(lease, now: now) { job, moment in
            job.fail(code: code, message: message, retry: retry, memorySaving: memorySaving, now: moment.now)
        }
    }

    public func release(_ lease: Lease, now: Date) async throws -> Bool {
        try await update(lease, now: now) { job, moment in job.release(now: moment.now) }
    }

    public func finishCancelled(_ lease: Lease, now: Date) async throws -> Bool {
        try await update(lease, now: now) { job, moment in job.finishCancelled(now: moment.now) }
    }

    public func cancel(id: String, now: Date) async throws -> Job? {
        try await transaction { connection in
            guard let (record, digest) = try await self.lockJob(id, connection) else { return nil }
            var job = record
            let moment = try await self.moment(now, connection)
            if let event = job.cancel(now: moment.now) {
                try await self.save(job, digest: digest, event: event, at: moment.now, connection)
            }
            return job
        }
    }

    public func recoverExpired(now: Date, maxAttempts: Int) async throws -> [Job] {
        try await transaction { connection in
            let moment = try await self.moment(now, connection)
            let seconds = moment.now.timeIntervalSince1970
            // SKIP LOCKED: a job whose owner is renewing it right now is alive; the next sweep looks again.
            let expired = try await self.fetchJobs(
                """
                SELECT doc::text, request_digest FROM job
                WHERE state = 'running' AND (lease_expires_at IS NULL OR lease_expires_at < \(seconds))
                ORDER BY priority DESC, created_at, id FOR UPDATE SKIP LOCKED
                """, connection)
            return try await self.recover(expired, maxAttempts: maxAttempts, at: moment.now, connection) { job in
                "the lease of \(job.leaseOwner ?? "?") expired"
            }
        }
    }

    public func recoverOwned(by owner: String, now: Date, maxAttempts: Int) async throws -> [Job] {
        try await transaction { connection in
            let moment = try await self.moment(now, connection)
            // Running jobs are few; matching in Swift keeps the owner test exactly the other stores'.
            let running = try await self.fetchJobs(
                """
                SELECT doc::text, request_digest FROM job WHERE state = 'running'
                ORDER BY priority DESC, created_at, id FOR UPDATE
                """, connection)
            let owned = running.filter { $0.job.isOwned(by: owner) }
            return try await self.recover(owned, maxAttempts: maxAttempts, at: moment.now, connection) { job in
                "\(job.leaseOwner ?? owner) restarted"
            }
        }
    }

    // MARK: Events

    public func events(jobID: String) async throws -> [JobEvent] {
        try await connections.withConnection { connection in
            var events: [JobEvent] = []
            let rows = try await connection.rows(
                "SELECT sequence, at, kind, message FROM job_event WHERE job_id = \(jobID) ORDER BY sequence",
                logger: self.logger)
            for try await (sequence, at, kind, message) in rows.decode((Int64, Double, String, String?).self) {
                events.append(
                    JobEvent(
                        jobID: jobID, sequence: sequence, at: Date(timeIntervalSince1970: at), kind: kind,
                        message: message))
            }
            return events
        }
    }

    public func appendEvent(jobID: String, kind: String, message: String?, now: Date) async throws {
        try await transaction { connection in
            guard let (job, _) = try await self.lockJob(jobID, connection) else { throw JobStoreError.unknownJob(jobID) }
            let moment = try await self.moment(now, connection)
            try await self.log(PendingEvent(kind: kind, message: message), for: job, at: moment.now, connection)
        }
    }

    // MARK: Nodes

    public func heartbeat(node: String, url: String, workers: Data) async throws {
        let json = String(decoding: workers, as: UTF8.self)
        try await connections.withConnection { connection in
            try await connection.run(
            """
            INSERT INTO node (name, url, workers, heartbeat_at) VALUES (\(node), \(url), \(json)::json, clock_timestamp())
            ON CONFLICT (name) DO UPDATE
            SET url = excluded.url, workers = excluded.workers, heartbeat_at = excluded.heartbeat_at
            """, logger: self.logger)
        }
    }

    public func nodes() async throws -> [ClusterNode] {
        try await connections.withConnection { connection in
            let rows = try await connection.rows(
                """
                SELECT name, url, workers::text, extract(epoch FROM clock_timestamp() - heartbeat_at)::float8
                FROM node ORDER BY name
                """, logger: self.logger)
            var nodes: [ClusterNode] = []
            for try await (name, url, workers, age) in rows.decode((String, String, String, Double).self) {
                nodes.append(
                    ClusterNode(name: name, url: url, workers: Data(workers.utf8), secondsSinceHeartbeat: age))
            }
            return nodes
        }
    }

    public func removeNode(_ name: String) async throws {
        try await connections.withConnection { connection in
            try await connection.run("DELETE FROM node WHERE name = \(name)", logger: self.logger)
        }
    }

    // MARK: Updates

    public func updates() -> AsyncStream<JobUpdate> { feed.subscribe() }

    public var updateSubscriberCount: Int { feed.subscriberCount }

    public func publish(_ update: JobUpdate) async {
        do {
            try await connections.withConnection { connection in
                try await connection.run(
                    "SELECT pg_notify(\(Self.updatesChannel), \(Self.notice(update)))", logger: self.logger)
            }
        } catch {
            logger.warning("could not announce an update of job \(update.job): \(error)")
        }
    }

    /// Listens on the updates channel on a connection of its own and publishes what every node announces, this one
    /// included, to `updates()`; reconnects after a failure, until the task is cancelled. Updates announced while it
    /// was reconnecting are not heard (the jobs' states and event logs have them).
    public func relayUpdates() async {
        while !Task.isCancelled {
            do {
                let connection = try await connections.connect()
                do {
                    try await connection.listen(on: Self.updatesChannel) { notifications in
                        for try await notification in notifications {
                            if let update = Self.decodeNotice(notification.payload) { self.feed.publish(update) }
                        }
                    }
                    try? await connection.close()
                } catch {
                    try? await connection.close()
                    throw error
                }
            } catch {
                if Task.isCancelled { return }
                logger.warning("listening for job updates failed, retrying in 1 s: \(String(reflecting: error))")
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }
}

// MARK: - Transactions and rows

extension PostgresJobStore {
    /// The time one transaction works with: `now`, and how far it is from the caller's clock.
    struct Moment {
        var now: Date
        /// `now` minus the caller's `now`: added to a date the caller computed, it keeps that date's distance from
        /// the caller's now.
        var shift: TimeInterval

        func shifted(_ date: Date) -> Date { date.addingTimeInterval(shift) }
    }

    func moment(_ callerNow: Date, _ connection: PostgresConnection) async throws -> Moment {
        switch timeSource {
        case .caller:
            return Moment(now: callerNow.storedPrecision, shift: 0)
        case .database:
            let rows = try await connection.rows(
                "SELECT extract(epoch FROM clock_timestamp())::float8", logger: logger)
            var seconds: Double?
            for try await value in rows.decode(Double.self) { seconds = value }
            let now = Date(timeIntervalSince1970: try seconds.unwrap("clock_timestamp()"))
            return Moment(now: now, shift: now.timeIntervalSince(callerNow))
        }
    }

    /// Runs `body` in one transaction on one connection: committed when it returns, rolled back when it throws.
    func transaction<Result: Sendable>(_ body: @Sendable (PostgresConnection) async throws -> Result) async throws
        -> Result
    {
        try await connections.withConnection { connection in
            try await connection.run("BEGIN", logger: self.logger)
            let result: Result
            do {
                result = try await body(connection)
            } catch {
                do {
                    try await connection.run("ROLLBACK", logger: self.logger)
                } catch {
                    // A connection in an unknown state is not lent again.
                    try? await connection.close()
                }
                throw error
            }
            try await connection.run("COMMIT", logger: self.logger)
            return result
        }
    }

    /// Runs `body` again when it loses a race on a unique index (two nodes adding the same idempotency key or id at
    /// once): the second run sees the first one's row and answers as the rules say.
    func retryingUniqueViolations<Result: Sendable>(_ body: @Sendable () async throws -> Result) async throws
        -> Result
    {
        for _ in 0..<3 {
            do {
                return try await body()
            } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
                continue
            }
        }
        return try await body()
    }

    typealias Row = (job: Job, digest: String?)

    func fetchJobs(_ query: PostgresQuery, _ connection: PostgresConnection? = nil) async throws -> [Row] {
        if let connection { return try await decodeJobs(connection.rows(query, logger: logger)) }
        return try await connections.withConnection { connection in
            try await self.decodeJobs(connection.rows(query, logger: self.logger))
        }
    }

    private func decodeJobs(_ rows: PostgresRowSequence) async throws -> [Row] {
        var result: [Row] = []
        for try await (doc, digest) in rows.decode((String, String?).self) {
            result.append((try Self.decodeJob(doc), digest))
        }
        return result
    }

    func lockJob(_ id: String, _ connection: PostgresConnection) async throws -> Row? {
        try await fetchJobs("SELECT doc::text, request_digest FROM job WHERE id = \(id) FOR UPDATE", connection).first
    }

    private func counts(_ query: PostgresQuery) async throws -> [JobState: Int] {
        try await connections.withConnection { connection in
            var counts = Dictionary(uniqueKeysWithValues: JobState.allCases.map { ($0, 0) })
            for try await (name, count) in try await connection.rows(query, logger: self.logger).decode(
                (String, Int).self)
            {
                guard let state = JobState(rawValue: name) else {
                    throw JobStoreError(.corrupt, "table job holds an unknown state \"\(name)\"")
                }
                counts[state] = count
            }
            return counts
        }
    }

    private func backendPID(_ connection: PostgresConnection) async throws -> Int32 {
        var pid: Int32?
        for try await value in try await connection.rows("SELECT pg_backend_pid()", logger: logger).decode(
            Int32.self)
        {
            pid = value
        }
        return try pid.unwrap("pg_backend_pid()")
    }

    func insert(_ new: NewJob, at now: Date, _ connection: PostgresConnection) async throws -> (job: Job, created: Bool)
    {
        if let key = new.idempotencyKey,
            let (existing, digest) = try await fetchJobs(
                "SELECT doc::text, request_digest FROM job WHERE idempotency_key = \(key)", connection
            ).first
        {
            guard digest == new.requestDigest else {
                throw JobStoreError.idempotencyConflict(key: key, jobID: existing.id)
            }
            return (existing, false)
        }
        let exists = try await connection.rows("SELECT 1 FROM job WHERE id = \(new.id)", logger: logger)
        var found = false
        for try await _ in exists { found = true }
        if found { throw JobStoreError.duplicateID(new.id) }
        let job = Job(new, now: now)
        try await insertRow(job, digest: new.requestDigest, connection)
        try await log(PendingEvent(.queued), for: job, at: now, connection)
        return (job, true)
    }

    /// Writes a whole job as a new row.
    func insertRow(_ job: Job, digest: String?, _ connection: PostgresConnection) async throws {
        let doc = try Self.encode(job)
        try await connection.run(
            """
            INSERT INTO job (id, state, priority, created_at, lease_owner, lease_expires_at, idempotency_key,
                request_digest, batch_id, owner, node, doc)
            VALUES (\(job.id), \(job.state.rawValue), \(job.priority), \(job.createdAt.timeIntervalSince1970),
                \(job.leaseOwner), \(job.leaseExpiresAt?.timeIntervalSince1970), \(job.idempotencyKey), \(digest),
                \(job.batchID), \(job.owner), \(job.node), \(doc)::json)
            """, logger: logger)
    }

    /// Applies `change` to the job `lease` names, in one transaction, if the lease is current.
    private func update(
        _ lease: Lease, now: Date, _ change: @escaping @Sendable (inout Job, Moment) -> PendingEvent?
    ) async throws -> Bool {
        try await transaction { connection in
            guard let (record, digest) = try await self.lockJob(lease.jobID, connection), record.isHeld(by: lease)
            else { return false }
            let moment = try await self.moment(now, connection)
            var job = record
            let event = change(&job, moment)
            try await self.save(job, digest: digest, event: event, at: moment.now, connection)
            return true
        }
    }

    private func recover(
        _ rows: [Row], maxAttempts: Int, at now: Date, _ connection: PostgresConnection,
        because why: (Job) -> String
    ) async throws -> [Job] {
        var recovered: [Job] = []
        for (record, digest) in rows {
            var job = record
            let event = job.recover(because: why(job), maxAttempts: maxAttempts, now: now)
            try await save(job, digest: digest, event: event, at: now, connection)
            recovered.append(job)
        }
        return recovered
    }

    /// Writes `job` over its row, logs `event`, and announces the job when it is (back) in the queue.
    private func save(
        _ job: Job, digest: String?, event: PendingEvent?, at now: Date, _ connection: PostgresConnection
    ) async throws {
        let doc = try Self.encode(job)
        try await connection.run(
            """
            UPDATE job SET state = \(job.state.rawValue), priority = \(job.priority),
                lease_owner = \(job.leaseOwner), lease_expires_at = \(job.leaseExpiresAt?.timeIntervalSince1970),
                node = \(job.node), doc = \(doc)::json
            WHERE id = \(job.id)
            """, logger: logger)
        if let event { try await log(event, for: job, at: now, connection) }
    }

    /// Logs `event` of `job` (as the change left it) and announces its update, which every node's listener
    /// receives once the transaction commits (and none if it rolls back).
    func log(
        _ event: PendingEvent, for job: Job, at now: Date, _ connection: PostgresConnection, announce: Bool = true
    ) async throws {
        try await connection.run(
            """
            INSERT INTO job_event (job_id, at, kind, message)
            VALUES (\(job.id), \(now.storedPrecision.timeIntervalSince1970), \(event.kind), \(event.message))
            """, logger: logger)
        guard announce else { return }
        let update = JobUpdate(kind: event.kind, message: event.message, job: job, at: now.storedPrecision)
        try await connection.run("SELECT pg_notify(\(Self.updatesChannel), \(Self.notice(update)))", logger: logger)
    }

    /// What travels on the updates channel: the update with its owner, within PostgreSQL's 8000-byte payload limit
    /// (a long message is shortened).
    struct Notice: Codable {
        var update: JobUpdate
        var owner: String?
    }

    static func notice(_ update: JobUpdate) -> String {
        var update = update
        for limit in [2000, 200, 0] {
            if let message = update.message, message.utf8.count > limit {
                update.message = limit == 0 ? nil : String(message.prefix(limit)) + "…"
            }
            if let data = try? JSONEncoder.notices.encode(Notice(update: update, owner: update.owner)),
                data.count < 7900
            {
                return String(decoding: data, as: UTF8.self)
            }
        }
        return "{}"
    }

    static func decodeNotice(_ payload: String) -> JobUpdate? {
        guard let notice = try? JSONDecoder.notices.decode(Notice.self, from: Data(payload.utf8)) else { return nil }
        var update = notice.update
        update.owner = notice.owner
        return update
    }

    static func encode(_ job: Job) throws -> String {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(job), as: UTF8.self)
    }

    static func decodeJob(_ doc: String) throws -> Job {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        do {
            return try decoder.decode(Job.self, from: Data(doc.utf8))
        } catch {
            throw JobStoreError(.corrupt, "table job holds a row whose doc does not decode as a job: \(error)")
        }
    }
}

extension JSONEncoder {
    /// Dates as seconds since 1970, as the notices carry them.
    static var notices: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        return encoder
    }
}

extension JSONDecoder {
    static var notices: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        return decoder
    }
}

extension Optional {
    fileprivate func unwrap(_ what: String) throws -> Wrapped {
        guard let self else { throw JobStoreError(.corrupt, "PostgreSQL returned no value for \(what)") }
        return self
    }
}

extension PostgresJobStore: TransferableJobStore {
    public func exportJobs(after: String?, limit: Int) async throws -> [StoredJob] {
        try await transaction { connection in
            let rows = try await self.fetchJobs(
                after.map { after in
                    "SELECT doc::text, request_digest FROM job WHERE id > \(after) ORDER BY id LIMIT \(limit)"
                } ?? "SELECT doc::text, request_digest FROM job ORDER BY id LIMIT \(limit)", connection)
            var stored: [StoredJob] = []
            for (job, digest) in rows {
                var events: [JobEvent] = []
                let eventRows = try await connection.rows(
                    "SELECT sequence, at, kind, message FROM job_event WHERE job_id = \(job.id) ORDER BY sequence",
                    logger: self.logger)
                for try await (sequence, at, kind, message) in eventRows.decode((Int64, Double, String, String?).self)
                {
                    events.append(
                        JobEvent(
                            jobID: job.id, sequence: sequence, at: Date(timeIntervalSince1970: at), kind: kind,
                            message: message))
                }
                stored.append(StoredJob(job: job, requestDigest: digest, events: events))
            }
            return stored
        }
    }

    public func importJobs(_ jobs: [StoredJob], batches: [BatchManifest]) async throws {
        try await transaction { connection in
            for manifest in batches where !(try await self.insertBatch(manifest, connection, unlessPresent: true)) {
                throw JobStoreError.duplicateBatch(manifest.id)
            }
            for stored in jobs {
                let exists = try await connection.rows(
                    "SELECT 1 FROM job WHERE id = \(stored.job.id)", logger: self.logger)
                var found = false
                for try await _ in exists { found = true }
                if found { throw JobStoreError.duplicateID(stored.job.id) }
                try await self.insertRow(stored.job, digest: stored.requestDigest, connection)
                // A job's history, not news: logged, not announced.
                for event in stored.events {
                    try await self.log(
                        PendingEvent(kind: event.kind, message: event.message), for: stored.job, at: event.at,
                        connection, announce: false)
                }
            }
        }
    }

    public func jobCount() async throws -> Int {
        try await connections.withConnection { connection in
            var count = 0
            for try await value in try await connection.rows("SELECT count(*) FROM job", logger: self.logger)
                .decode(Int.self)
            {
                count = value
            }
            return count
        }
    }
}

extension PostgresConnection {
    /// Runs a statement and reads its every row: a result left unread keeps the connection busy, and the next
    /// statement on it would wait for it.
    func run(_ query: PostgresQuery, logger: Logger) async throws {
        for try await _ in try await rows(query, logger: logger) {}
    }

    /// `query`, refused at once on a connection already closed: postgres-nio would wait forever for the answer to a
    /// statement written to a closed channel (the server ended the session, say).
    func rows(_ query: PostgresQuery, logger: Logger) async throws -> PostgresRowSequence {
        guard !isClosed else {
            throw JobStoreError.unreachable("PostgreSQL: the server ended the session")
        }
        return try await self.query(query, logger: logger)
    }
}
