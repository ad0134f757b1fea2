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

/// An image's bytes as one store hands them to another.
public struct StoredImage: Sendable, Equatable {
    public var sha256: String
    public var bytes: [UInt8]

    public init(sha256: String, bytes: [UInt8]) {
        self.sha256 = sha256
        self.bytes = bytes
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

    /// Up to `limit` images with their bytes, in SHA-256 order, after the image `after` (nil: from the first).
    func exportImages(after: String?, limit: Int) async throws -> [StoredImage]
}

/// What `StoreTransfer.copy` did.
public struct StoreTransferReport: Sendable, Equatable {
    public var jobs = 0
    public var events = 0
    public var batches = 0
    public var images = 0
    /// Jobs that were running in the source: the leases of its nodes mean nothing in the target, so they arrive
    /// queued (with a `requeued` event), their attempt not counted.
    public var requeued: [String] = []
}

public enum StoreTransfer {
    /// Copies every job and every batch manifest of `source` into `target`, which must be empty: a store that
    /// already holds jobs or batches is refused, so that nothing is duplicated or overwritten. The copy is one
    /// transaction in the target: an interrupted copy leaves it empty, ready for another try. `source` is only read.
    ///
    /// The images go first, a few at a time (each may be megabytes), each as if stored now (`putImage`, which is
    /// idempotent): an interrupted copy may leave some, which the next try finds in place and a sweep removes if no
    /// job comes to name them. No job arrives before its images.
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
        var afterImage: String?
        while true {
            let page = try await source.exportImages(after: afterImage, limit: 8)
            guard let last = page.last else { break }
            afterImage = last.sha256
            for image in page {
                let header: ImageHeader
                do {
                    header = try ImageHeader.read(
                        Data(image.bytes), field: "image", limits: ImageLimits(maxBytes: .max, maxPixels: .max))
                } catch {
                    throw JobStoreError(.corrupt, "the source's image img_\(image.sha256) is not readable: \(error)")
                }
                let reference = ImageReference(
                    sha256: image.sha256, format: header.format, width: header.width, height: header.height)
                _ = try await target.putImage(reference, bytes: image.bytes, now: now)
                report.images += 1
            }
        }
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
