import Foundation
import Logging
import PostgresNIO
import ReelCore

/// Claims under leases, and everything a lease holder or the sweeper does to a running job.
extension PostgresJobStore {
    // MARK: Leases

    public func claim(
        owner: String, slot: String, leaseExpiresAt: Date, now: Date, affinity: ClaimAffinity?
    ) async throws -> (
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
            guard let head = rows.first else { return nil }
            let moment = try await self.moment(now, connection)
            var (record, digest) = (head.job, head.digest)
            if let affinity, let chosen = try await self.affine(head: head.job, affinity, moment, connection) {
                (record, digest) = (chosen.job, chosen.digest)
            }
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

    /// The job a claimer holding `affinity` takes instead of `head` (see `ClaimAffinity`), marking the jobs it
    /// passes over; nil to take the head. Rows other claimers hold are skipped, as they are being taken anyway.
    private func affine(
        head: Job, _ affinity: ClaimAffinity, _ moment: Moment, _ connection: PostgresConnection
    ) async throws -> Row? {
        guard !affinity.takesHead(headKey: head.spec.loraKey) else { return nil }
        guard
            let candidate = try await fetchJobs(
                """
                SELECT doc::text, request_digest FROM job
                WHERE state = 'queued' AND lora_key = \(affinity.loraKey) AND priority = \(head.priority)
                ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED
                """, connection
            ).first
        else { return nil }
        let created = candidate.job.createdAt.timeIntervalSince1970
        let id = candidate.job.id
        var oldest: Double?
        for try await value in try await connection.rows(
            """
            SELECT min(passed_over_at) FROM job
            WHERE state = 'queued' AND priority = \(head.priority) AND (created_at, id) < (\(created), \(id))
            """, logger: logger
        ).decode(Double?.self) {
            oldest = value
        }
        guard
            affinity.mayPassOver(oldestPassedOver: oldest.map { Date(timeIntervalSince1970: $0) }, now: moment.now)
        else { return nil }
        try await connection.run(
            """
            UPDATE job SET passed_over_at = \(moment.now.timeIntervalSince1970)
            WHERE id IN (
                SELECT id FROM job
                WHERE state = 'queued' AND priority = \(head.priority) AND (created_at, id) < (\(created), \(id))
                    AND passed_over_at IS NULL
                FOR UPDATE SKIP LOCKED)
            """, logger: logger)
        return candidate
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

    public func fail(
        _ lease: Lease, code: String, message: String, retry: Bool, memorySaving: Bool, now: Date
    )
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
}
