import Foundation
import Logging
import PostgresNIO
import ReelCore

/// Transactions, the database's clock, and reading and writing rows: what the other parts are made of.
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
    func transaction<Result: Sendable>(
        _ body: @Sendable (PostgresConnection) async throws -> Result
    ) async throws
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
    func retryingUniqueViolations<Result: Sendable>(
        _ body: @Sendable () async throws -> Result
    ) async throws
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

    func decodeJobs(_ rows: PostgresRowSequence) async throws -> [Row] {
        var result: [Row] = []
        for try await (doc, digest) in rows.decode((String, String?).self) {
            result.append((try Self.decodeJob(doc), digest))
        }
        return result
    }

    func lockJob(_ id: String, _ connection: PostgresConnection) async throws -> Row? {
        try await fetchJobs("SELECT doc::text, request_digest FROM job WHERE id = \(id) FOR UPDATE", connection).first
    }

    func counts(_ query: PostgresQuery) async throws -> [JobState: Int] {
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

    func backendPID(_ connection: PostgresConnection) async throws -> Int32 {
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
                request_digest, batch_id, owner, node, lora_key, doc)
            VALUES (\(job.id), \(job.state.rawValue), \(job.priority), \(job.createdAt.timeIntervalSince1970),
                \(job.leaseOwner), \(job.leaseExpiresAt?.timeIntervalSince1970), \(job.idempotencyKey), \(digest),
                \(job.batchID), \(job.owner), \(job.node), \(job.spec.loraKey), \(doc)::json)
            """, logger: logger)
    }

    /// Applies `change` to the job `lease` names, in one transaction, if the lease is current.
    func update(
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

    func recover(
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
    func save(
        _ job: Job, digest: String?, event: PendingEvent?, at now: Date, _ connection: PostgresConnection
    ) async throws {
        let doc = try Self.encode(job)
        try await connection.run(
            """
            UPDATE job SET state = \(job.state.rawValue), priority = \(job.priority),
                lease_owner = \(job.leaseOwner), lease_expires_at = \(job.leaseExpiresAt?.timeIntervalSince1970),
                node = \(job.node), passed_over_at = NULL, doc = \(doc)::json
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
        try await notify(update, connection)
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

extension Optional {
    func unwrap(_ what: String) throws -> Wrapped {
        guard let self else { throw JobStoreError(.corrupt, "PostgreSQL returned no value for \(what)") }
        return self
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
