import Foundation
import ReelCore

/// A job with everything a store keeps about it, as one store hands it to another.
public struct StoredJob: Sendable, Equatable {
    public var job: Job
    /// The digest of the request its idempotency key was first used with.
    public var requestDigest: String?
    /// Its event log, in order; the receiving store numbers the events afresh (in the same order).
    public var events: [JobEvent]

    public init(job: Job, requestDigest: String?, events: [JobEvent]) {
        self.job = job
        self.requestDigest = requestDigest
        self.events = events
    }
}

/// A store whose whole content can be read out and written into another: what `reel migrate-store` needs.
public protocol TransferableJobStore: JobStore {
    /// Up to `limit` jobs in id order, after the job `after` (nil: from the first).
    func exportJobs(after: String?, limit: Int) async throws -> [StoredJob]

    /// Up to `limit` batch manifests in id order, after the batch `after` (nil: from the first).
    func exportBatches(after: String?, limit: Int) async throws -> [BatchManifest]

    /// Adds every job as it is, with its event log, and every batch manifest as it is, in one transaction: all or
    /// none. Throws `JobStoreError.duplicateID` for a job or batch id already in the store.
    func importJobs(_ jobs: [StoredJob], batches: [BatchManifest]) async throws

    /// How many jobs the store holds.
    func jobCount() async throws -> Int

    /// How many batch manifests the store holds.
    func batchCount() async throws -> Int
}

/// What `StoreTransfer.copy` did.
public struct StoreTransferReport: Sendable, Equatable {
    public var jobs = 0
    public var events = 0
    public var batches = 0
    /// Jobs that were running in the source: the leases of its nodes mean nothing in the target, so they arrive
    /// queued (with a `requeued` event), their attempt not counted.
    public var requeued: [String] = []
}

public enum StoreTransfer {
    /// Copies every job and every batch manifest of `source` into `target`, which must be empty: a store that
    /// already holds jobs or batches is refused, so that nothing is duplicated or overwritten. The copy is one
    /// transaction in the target: an interrupted copy leaves it empty, ready for another try. `source` is only read.
    public static func copy(
        from source: any TransferableJobStore, to target: any TransferableJobStore, now: Date = Date()
    ) async throws -> StoreTransferReport {
        let existing = try await target.jobCount()
        let existingBatches = try await target.batchCount()
        guard existing == 0 && existingBatches == 0 else {
            let held = [
                existing > 0 ? "\(existing) job\(existing == 1 ? "" : "s")" : nil,
                existingBatches > 0 ? "\(existingBatches) batch\(existingBatches == 1 ? "" : "es")" : nil,
            ].compactMap { $0 }.joined(separator: " and ")
            throw JobStoreError(
                .duplicateID,
                "the target store already holds \(held); migrate-store copies "
                    + "into an empty store only, so that nothing is duplicated or overwritten. Point --to at a new "
                    + "database, or empty this one first")
        }
        var report = StoreTransferReport()
        var all: [StoredJob] = []
        var after: String?
        while true {
            let page = try await source.exportJobs(after: after, limit: 500)
            guard let last = page.last else { break }
            after = last.job.id
            for var stored in page {
                if stored.job.state == .running {
                    // The same words and state as a release: back to the queue, this attempt not counted.
                    let event = stored.job.release(now: now)
                    stored.events.append(
                        JobEvent(
                            jobID: stored.job.id, sequence: 0, at: now.storedPrecision, kind: event.kind,
                            message: "moved to another store while running; " + (event.message ?? "")))
                    report.requeued.append(stored.job.id)
                }
                report.jobs += 1
                report.events += stored.events.count
                all.append(stored)
            }
        }
        var batches: [BatchManifest] = []
        var afterBatch: String?
        while true {
            let page = try await source.exportBatches(after: afterBatch, limit: 500)
            guard let last = page.last else { break }
            afterBatch = last.id
            batches += page
        }
        report.batches = batches.count
        try await target.importJobs(all, batches: batches)
        return report
    }
}
