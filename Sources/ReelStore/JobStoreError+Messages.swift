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

    static func unknownCursor(_ id: String) -> JobStoreError {
        JobStoreError(.notFound, "no job \(id) to page from; pass the id of the last job of the previous page")
    }

    static func unknownJob(_ id: String) -> JobStoreError {
        JobStoreError(.notFound, "no job \(id)")
    }
}
