import Foundation
import Logging
import PostgresNIO
import ReelCore

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
                for try await (sequence, at, kind, message) in eventRows.decode((Int64, Double, String, String?).self) {
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
