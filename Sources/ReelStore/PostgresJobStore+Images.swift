import Foundation
import PostgresNIO
import ReelCore

/// The images jobs start from, in table `image`, where every node reads them.
extension PostgresJobStore {
    public func putImage(_ reference: ImageReference, bytes: [UInt8], now: Date) async throws -> Bool {
        let at = callerSeconds(now)
        return try await connections.withConnection { connection in
            // An image stored already is only marked used: its bytes need not cross the network again.
            if try await self.markImageUsed(reference.sha256, at: at, connection) { return false }
            // A node storing the same image at this moment wins the race: nothing to do, its row is as fresh.
            let rows = try await connection.rows(
                """
                INSERT INTO image (sha256, format, bytes, created_at, used_at)
                VALUES (
                    \(reference.sha256), \(reference.format.rawValue), \(ByteBuffer(bytes: bytes)),
                    coalesce(to_timestamp(\(at)::float8), clock_timestamp()),
                    coalesce(to_timestamp(\(at)::float8), clock_timestamp()))
                ON CONFLICT (sha256) DO NOTHING RETURNING 1
                """, logger: self.logger)
            var inserted = false
            for try await _ in rows { inserted = true }
            return inserted
        }
    }

    public func imageBytes(sha256: String) async throws -> [UInt8]? {
        try await connections.withConnection { connection in
            let rows = try await connection.rows(
                "SELECT bytes FROM image WHERE sha256 = \(sha256)", logger: self.logger)
            var bytes: [UInt8]?
            for try await buffer in rows.decode(ByteBuffer.self) { bytes = Array(buffer.readableBytesView) }
            return bytes
        }
    }

    public func markImageUsed(sha256: String, now: Date) async throws -> Bool {
        let at = callerSeconds(now)
        return try await connections.withConnection { connection in
            try await self.markImageUsed(sha256, at: at, connection)
        }
    }

    public func deleteUnusedImages(unusedFor: TimeInterval, now: Date) async throws -> Int {
        let at = callerSeconds(now)
        return try await connections.withConnection { connection in
            // One statement. Under READ COMMITTED it judges the jobs as of its start, so a job queued meanwhile is
            // not seen; that job's submission marked its images used first (`ImageLibrary.share`), which puts them
            // out of reach: a row it touched before this statement started is too recent, and one it touches while
            // this statement runs is locked, waited for and judged again by its new `used_at`. A submission that
            // finds its image deleted puts it back from its node's file.
            let rows = try await connection.rows(
                """
                WITH deleted AS (
                    DELETE FROM image
                    WHERE used_at < coalesce(to_timestamp(\(at)::float8), clock_timestamp())
                            - make_interval(secs => \(unusedFor)::float8)
                        AND NOT EXISTS (
                            SELECT 1 FROM job WHERE (job.doc -> 'spec' -> 'image' ->> 'sha256') = image.sha256)
                        AND NOT EXISTS (
                            SELECT 1 FROM job WHERE (job.doc -> 'spec' -> 'lastImage' ->> 'sha256') = image.sha256)
                    RETURNING 1)
                SELECT count(*)::int8 FROM deleted
                """, logger: self.logger)
            var count = 0
            for try await value in rows.decode(Int.self) { count = value }
            return count
        }
    }

    public func exportImages(after: String?, limit: Int) async throws -> [StoredImage] {
        try await connections.withConnection { connection in
            let rows = try await connection.rows(
                "SELECT sha256, bytes FROM image WHERE sha256 > \(after ?? "") ORDER BY sha256 LIMIT \(limit)",
                logger: self.logger)
            var images: [StoredImage] = []
            for try await (sha256, bytes) in rows.decode((String, ByteBuffer).self) {
                images.append(StoredImage(sha256: sha256, bytes: Array(bytes.readableBytesView)))
            }
            return images
        }
    }

    private func markImageUsed(_ sha256: String, at: Double?, _ connection: PostgresConnection) async throws -> Bool {
        let rows = try await connection.rows(
            """
            UPDATE image SET used_at = coalesce(to_timestamp(\(at)::float8), clock_timestamp())
            WHERE sha256 = \(sha256) RETURNING 1
            """, logger: logger)
        var found = false
        for try await _ in rows { found = true }
        return found
    }

    /// The caller's `now` as seconds when its dates are kept (`TimeSource.caller`); nil for the database's clock.
    private func callerSeconds(_ now: Date) -> Double? {
        timeSource == .caller ? now.storedPrecision.timeIntervalSince1970 : nil
    }
}
