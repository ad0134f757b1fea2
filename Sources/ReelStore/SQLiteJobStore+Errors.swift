import GRDB

/// The `DatabasePool` of a `SQLiteJobStore`, whose reads and writes throw `JobStoreError`s for the failures an
/// operator or a client can act on (a full disk, a database locked past the busy timeout, a disk that failed)
/// instead of GRDB's `DatabaseError`, so the HTTP layer can answer them as what they are.
struct SQLitePool: Sendable {
    let pool: DatabasePool

    func write<T: Sendable>(_ updates: @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.write(updates)
        } catch let error as DatabaseError {
            throw Self.storeError(error)
        }
    }

    func read<T: Sendable>(_ value: @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.read(value)
        } catch let error as DatabaseError {
            throw Self.storeError(error)
        }
    }

    func read<T>(_ value: (Database) throws -> T) throws -> T {
        do {
            return try pool.read(value)
        } catch let error as DatabaseError {
            throw Self.storeError(error)
        }
    }

    func barrierWriteWithoutTransaction<T>(_ updates: (Database) throws -> T) throws -> T {
        do {
            return try pool.barrierWriteWithoutTransaction(updates)
        } catch let error as DatabaseError {
            throw Self.storeError(error)
        }
    }

    /// A `JobStoreError` for the failures worth naming; others unchanged.
    static func storeError(_ error: DatabaseError) -> any Error {
        let detail = "SQLite: \(error.message ?? "\(error.resultCode)")"
        switch error.resultCode {
        case .SQLITE_FULL:
            return JobStoreError.diskFull(detail)
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            return JobStoreError.busy(detail)
        case .SQLITE_IOERR, .SQLITE_CANTOPEN, .SQLITE_READONLY, .SQLITE_CORRUPT, .SQLITE_NOTADB:
            // A write that failed for want of space can surface as an I/O error (ENOSPC on the WAL's memory map).
            if error.extendedResultCode == .SQLITE_IOERR_WRITE || error.extendedResultCode == .SQLITE_IOERR_FSYNC
                || error.extendedResultCode == .SQLITE_IOERR_TRUNCATE
                || error.extendedResultCode == .SQLITE_IOERR_SHMSIZE
            {
                return JobStoreError.unavailable(detail + "; the disk may be full")
            }
            return JobStoreError.unavailable(detail)
        default:
            return error
        }
    }
}
