import ReelAPI
import ReelCore

extension BatchSubmitted {
    /// The answer to a submission that made `manifest`: its id and rows when they were queued; with `atomic=true` and
    /// a bad row, no id and why nothing was.
    init(_ manifest: BatchManifest, queued: Bool) {
        self.init(
            id: queued ? manifest.id : nil, queued: queued,
            accepted: manifest.accepted.map { Accepted(row: $0.row, job: $0.job) },
            rejected: manifest.rejected.map(RejectedRow.init),
            error: queued
                ? nil
                : ErrorBody.Detail(
                    code: "invalid_value",
                    message: "\(manifest.rejected.count) rows are invalid and atomic=true, so nothing was queued",
                    field: manifest.rejected.first?.column))
    }
}

extension RejectedRow {
    init(_ rejected: BatchManifest.Rejected) {
        self.init(row: rejected.row, column: rejected.column, message: rejected.message)
    }
}
