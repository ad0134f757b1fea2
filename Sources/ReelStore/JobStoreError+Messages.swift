/// The errors both stores throw, worded once so that they say the same thing.
extension JobStoreError {
    static func idempotencyConflict(key: String, jobID: String) -> JobStoreError {
        JobStoreError(
            .idempotencyConflict,
            "idempotency key \"\(key)\" was already used by job \(jobID) for a different request; "
                + "use a new key for a new request")
    }

    static func duplicateID(_ id: String) -> JobStoreError {
        JobStoreError(.duplicateID, "a job with id \(id) already exists; give the new job another id")
    }

    static func duplicateBatch(_ id: String) -> JobStoreError {
        JobStoreError(.duplicateID, "a batch with id \(id) already exists; give the new batch another id")
    }

    static func unknownCursor(_ id: String) -> JobStoreError {
        JobStoreError(.notFound, "no job \(id) to page from; pass the id of the last job of the previous page")
    }

    static func unknownJob(_ id: String) -> JobStoreError {
        JobStoreError(.notFound, "no job \(id)")
    }
}

extension JobStoreError {
    /// How long a client should wait before retrying a write that met a locked database.
    public static let busyRetryAfterSeconds = 5

    static func diskFull(_ detail: String) -> JobStoreError {
        JobStoreError(
            .diskFull,
            "the job database's disk is full, so nothing was stored (\(detail)); nothing stored before is lost. "
                + "Free space on that disk, then retry")
    }

    static func busy(_ detail: String) -> JobStoreError {
        JobStoreError(
            .busy,
            "the job database is locked by another connection (\(detail)); retry in \(busyRetryAfterSeconds) s")
    }

    static func unavailable(_ detail: String) -> JobStoreError {
        JobStoreError(
            .unavailable,
            "the job database cannot be read or written (\(detail)); the server's operator must check its disk")
    }

    static func unreachable(_ detail: String) -> JobStoreError {
        JobStoreError(
            .unavailable,
            "the job database cannot be reached just now (\(detail)); nothing was changed. Retry in "
                + "\(busyRetryAfterSeconds) s")
    }
}
