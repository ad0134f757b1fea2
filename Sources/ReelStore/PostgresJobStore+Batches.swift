import Foundation
import PostgresNIO
import ReelCore

/// Batch manifests in table `batch`, beside their jobs.
extension PostgresJobStore {
    public func enqueueBatch(
        _ manifest: BatchManifest, jobs: [NewJob], now: Date
    ) async throws
        -> (manifest: BatchManifest, jobs: [Job])
    {
        // A race on the batch id (or a job's key) is run again, and then answers as the rules say.
        try await retryingUniqueViolations {
            try await self.transaction { connection in
                if try await self.fetchBatches("SELECT doc::text FROM batch WHERE id = \(manifest.id)", connection)
                    .first != nil
                {
                    throw JobStoreError.duplicateBatch(manifest.id)
                }
                let moment = try await self.moment(now, connection)
                var stored = manifest
                stored.createdAt = moment.now
                try await self.insertBatch(stored, connection)
                var added: [Job] = []
                for job in jobs {
                    var job = job
                    job.batchID = manifest.id
                    added.append(try await self.insert(job, at: moment.now, connection).job)
                }
                return (stored, added)
            }
        }
    }

    public func batch(id: String) async throws -> BatchManifest? {
        try await connections.withConnection { connection in
            try await self.fetchBatches("SELECT doc::text FROM batch WHERE id = \(id)", connection).first
        }
    }

    public func importBatch(_ manifest: BatchManifest) async throws -> Bool {
        try await transaction { connection in
            try await self.insertBatch(manifest, connection, unlessPresent: true)
        }
    }

    public func exportBatches(after: String?, limit: Int) async throws -> [BatchManifest] {
        try await connections.withConnection { connection in
            try await self.fetchBatches(
                after.map { after in "SELECT doc::text FROM batch WHERE id > \(after) ORDER BY id LIMIT \(limit)" }
                    ?? "SELECT doc::text FROM batch ORDER BY id LIMIT \(limit)", connection)
        }
    }

    public func batchCount() async throws -> Int {
        try await connections.withConnection { connection in
            var count = 0
            for try await value in try await connection.rows("SELECT count(*) FROM batch", logger: self.logger)
                .decode(Int.self)
            {
                count = value
            }
            return count
        }
    }

    /// Writes a manifest as a new row; with `unlessPresent`, a batch of that id already there is kept and false
    /// returned.
    @discardableResult
    func insertBatch(
        _ manifest: BatchManifest, _ connection: PostgresConnection, unlessPresent: Bool = false
    ) async throws -> Bool {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        encoder.outputFormatting = .sortedKeys
        let doc = String(decoding: try encoder.encode(manifest), as: UTF8.self)
        let seconds = manifest.createdAt.storedPrecision.timeIntervalSince1970
        let conflict = unlessPresent ? " ON CONFLICT (id) DO NOTHING" : ""
        let rows = try await connection.rows(
            """
            INSERT INTO batch (id, created_at, owner, doc)
            VALUES (\(manifest.id), \(seconds), \(manifest.owner), \(doc)::json)\(unescaped: conflict) RETURNING id
            """, logger: logger)
        var inserted = false
        for try await _ in rows { inserted = true }
        return inserted
    }

    func fetchBatches(_ query: PostgresQuery, _ connection: PostgresConnection) async throws -> [BatchManifest] {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        var manifests: [BatchManifest] = []
        for try await doc in try await connection.rows(query, logger: logger).decode(String.self) {
            do {
                manifests.append(try decoder.decode(BatchManifest.self, from: Data(doc.utf8)))
            } catch {
                throw JobStoreError(
                    .corrupt, "table batch holds a row whose doc does not decode as a manifest: \(error)")
            }
        }
        return manifests
    }
}
