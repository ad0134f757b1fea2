import Foundation
import Logging
import PostgresNIO
import ReelCore

/// Adding, reading and deleting jobs, and their event logs.
extension PostgresJobStore {
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
            guard let (job, _) = try await self.lockJob(jobID, connection) else {
                throw JobStoreError.unknownJob(jobID)
            }
            let moment = try await self.moment(now, connection)
            try await self.log(PendingEvent(kind: kind, message: message), for: job, at: moment.now, connection)
        }
    }
}
