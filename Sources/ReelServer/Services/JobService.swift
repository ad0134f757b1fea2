import Foundation
import ReelAPI
import ReelCore
import ReelScheduler
import ReelStore
import Synchronization

/// The application layer between HTTP and the store: validates submissions, enqueues and cancels jobs, and tells
/// the scheduler and event subscribers about it. Knows nothing of HTTP; its errors are `ReelError`s.
///
/// Every lookup, listing, submission and deletion is scoped to `Caller.current`: a tenant sees and touches only its
/// own jobs, and another tenant's job is as absent as one that never existed.
public final class JobService: Sendable {
    public let store: any JobStore
    public let scheduler: Scheduler
    /// The model every job of this server runs with.
    public let model: ModelInfo
    public let limits: GenerationLimits
    /// The prompt styles jobs may name.
    public let styles: StyleLibrary
    /// The most jobs one tenant may have queued at once; nil for no limit. Callers without a tenant have none.
    public let maxQueuedPerOwner: Int?
    /// The LoRA files jobs may name, how many one expert holds, and each recipe's default pair.
    public let loras: LoRALibrary
    public let loraSlots: Int
    public let recipeLoRAs: [String: RecipeLoRAs]
    /// The library as it is now: one snapshot per submission, so a batch resolves every row against the same files.
    public var loraCatalog: LoRACatalog {
        loras.catalog(
            maxPerExpert: loraSlots, recipeLoRAs: recipeLoRAs,
            maxRank: scheduler.configuration.loraMaxRank ?? LoRACatalog.defaultMaxRank)
    }
    /// This node's files of the images jobs start from, in the data directory the scheduler's workers read them from.
    public var images: ImageStore { scheduler.configuration.images }
    /// The images as every node sharing the store sees them: this node's files, backed by the job store (where
    /// uploads go, and where a node without the file of an image reads it from).
    public var library: ImageLibrary { ImageLibrary(files: images, store: store) }
    /// Jobs being enqueued right now, by owner: counted against the limit until they are in the store.
    private let reservations = Mutex<[String: Int]>([:])

    /// The `Retry-After` of a submission refused because its tenant's queue is full: the queue drains at the
    /// speed of generation, which the server cannot promise, so this is a polite interval rather than a forecast.
    public static let queueFullRetryAfterSeconds = 30

    public init(
        store: any JobStore, scheduler: Scheduler, model: ModelInfo, limits: GenerationLimits = .standard,
        styles: StyleLibrary = .builtIn, maxQueuedPerOwner: Int? = nil, recipeLoRAs: [String: RecipeLoRAs] = [:]
    ) {
        self.recipeLoRAs = recipeLoRAs
        self.store = store
        self.scheduler = scheduler
        self.model = model
        self.limits = limits
        self.styles = styles
        self.maxQueuedPerOwner = maxQueuedPerOwner
        self.loras = scheduler.configuration.loraFiles
        self.loraSlots = scheduler.configuration.loraSlots ?? LoRACatalog.defaultSlots
    }

    /// A service for the scheduler's model (`scheduler.configuration.model`), resolved once here.
    public convenience init(
        store: any JobStore, scheduler: Scheduler, limits: GenerationLimits = .standard,
        styles: StyleLibrary = .builtIn, maxQueuedPerOwner: Int? = nil, recipeLoRAs: [String: RecipeLoRAs] = [:]
    ) throws(ReelError) {
        let model = try ModelCatalog.resolve(scheduler.configuration.model)
        self.init(
            store: store, scheduler: scheduler, model: model, limits: limits, styles: styles,
            maxQueuedPerOwner: maxQueuedPerOwner, recipeLoRAs: recipeLoRAs)
    }

    /// Validates and enqueues a job for the current caller. With an idempotency key already used for the same
    /// body, returns that job with `created == false`; for a different body, throws a `conflict`. Throws
    /// `tooManyQueued` when the caller's queue is full.
    public func submit(body: JobSubmission, idempotencyKey: String?) async throws -> (job: Job, created: Bool) {
        let spec = try await resolve(body)
        let owner = Caller.current.owner
        let scopedKey = idempotencyKey.map { Self.scoped($0, owner) }
        let new = NewJob(
            spec: spec, priority: body.priority ?? 0, idempotencyKey: scopedKey,
            requestDigest: idempotencyKey == nil ? nil : body.digest(resolving: spec.loras), owner: owner)
        let result: (job: Job, created: Bool)
        do {
            result = try await withQueueRoom(for: 1) { try await store.enqueue(new, now: Date()) }
        } catch let error as JobStoreError where error.code == .idempotencyConflict {
            var message = error.message
            if let scopedKey, let idempotencyKey {
                message = message.replacingOccurrences(of: "\"\(scopedKey)\"", with: "\"\(idempotencyKey)\"")
            }
            throw ReelError(.conflict, field: "Idempotency-Key", message)
        }
        if result.created {
            scheduler.jobsEnqueued()
        }
        return result
    }

    /// An idempotency key as stored: a tenant's keys live in the tenant's own namespace, so one tenant's key can
    /// neither return nor block another's job.
    static func scoped(_ key: String, _ owner: String?) -> String {
        owner.map { "\($0):\(key)" } ?? key
    }

    /// Runs `enqueue` when the caller's queue has room for `count` more jobs; throws `tooManyQueued` otherwise.
    ///
    /// Jobs being enqueued concurrently are reserved first and counted with the queued ones, so racing requests
    /// cannot together pass the limit (at worst a request racing near the limit is refused a little early).
    func withQueueRoom<T>(for count: Int, _ enqueue: () async throws -> T) async throws -> T {
        guard let limit = maxQueuedPerOwner, let owner = Caller.current.owner else { return try await enqueue() }
        let inFlight = reservations.withLock { reservations in
            reservations[owner, default: 0] += count
            return reservations[owner]!
        }
        defer {
            reservations.withLock { reservations in
                reservations[owner]! -= count
                if reservations[owner] == 0 { reservations[owner] = nil }
            }
        }
        let queued = try await store.counts(owner: owner)[.queued] ?? 0
        guard queued + inFlight <= limit else {
            throw ReelError(
                .tooManyQueued,
                "this key has \(queued) jobs queued and may have \(limit); "
                    + (count > limit ? "split the batch into parts of at most \(limit)" : "submit more as they start"))
        }
        return try await enqueue()
    }

    /// Cancels a job: a queued one at once, a running one at its worker's next step. A finished job is returned
    /// unchanged. Throws `notFound` for an unknown id.
    public func cancel(id: String) async throws -> Job {
        let before = try await job(id: id)
        guard let job = try await store.cancel(id: before.id, now: Date()) else { throw ReelError.noJob(id) }
        if job.state == .running && job.cancelRequested {
            scheduler.requestCancel(jobID: job.id)
        }
        return job
    }

    /// What `delete(id:)` did with a job.
    public enum Deletion: Sendable {
        /// The job was finished (or queued, and is now cancelled): it, its events and its files are gone.
        case deleted(Job)
        /// The job was running: it stops at its worker's next step and stays listed, as cancelled, until deleted
        /// again.
        case cancelling(Job)
    }

    /// Deletes a job for good: cancels it first when it is queued (and then deletes it) or running (and leaves it
    /// to stop); a finished job's row, events and output files are removed. Throws `notFound` for an unknown id.
    public func delete(id: String) async throws -> Deletion {
        var job = try await job(id: id)
        if !job.state.isTerminal {
            job = try await cancel(id: job.id)
            guard job.state.isTerminal else { return .cancelling(job) }
        }
        switch try await store.delete(id: job.id) {
        case .deleted(let deleted):
            // The outputs directory is the scheduler's, named by the job id the store gave: no request text in it.
            try? FileManager.default.removeItem(atPath: scheduler.configuration.outputDirectory(jobID: deleted.id))
            return .deleted(deleted)
        case .notFinished(let job):
            // A retry requeued it between the two steps; it is cancelled at its next step like a running one.
            return .cancelling(try await cancel(id: job.id))
        case .notFound:
            throw ReelError.noJob(id)
        }
    }

    /// The job with this id, if the current caller may see it; throws `notFound` otherwise.
    public func job(id: String) async throws -> Job {
        guard let job = try await store.job(id: id), Caller.current.canSee(job) else { throw ReelError.noJob(id) }
        return job
    }

    /// A page of the current caller's jobs (every job for an unrestricted caller). An `after` cursor that the
    /// caller cannot see is refused as `invalid_value` on `field`.
    public func jobs(_ query: JobQuery, cursorField: String) async throws -> [Job] {
        var query = query
        query.owner = Caller.current.owner
        do {
            return try await store.jobs(matching: query)
        } catch let error as JobStoreError where error.code == .notFound {
            throw ReelError.invalid(cursorField, error.message)
        }
    }

    /// The spec a submission runs with, or the error that names what is wrong; its images are in the job store
    /// once this returns.
    public func resolve(_ body: JobSubmission) async throws -> GenerationSpec {
        try await resolve(try body.specRow())
    }

    /// Validation of a submission: its images (ids of stored images, copied from the job store when this node has
    /// no file of them, or `data:` URLs, stored here), the model, the priority range, then the spec itself (the
    /// same check `reel batch` makes, `Validation.resolve(_:model:limits:styles:runner:)`). A valid spec's images
    /// are then shared (`ImageLibrary.share`): whichever node runs the job reads them from the store.
    public func resolve(_ row: SpecRow) async throws -> GenerationSpec {
        var row = row
        let library = library
        if let name = row.imageName { row.request.image = try await library.resolve(name, field: "image") }
        if let name = row.lastImageName {
            row.request.lastImage = try await library.resolve(name, field: "last_image")
        }
        let spec = try Validation.resolve(
            row, model: model, limits: limits, styles: styles, loras: loraCatalog, runner: "this server")
        try await library.share(imagesOf: spec)
        return spec
    }
}

extension ReelError {
    static func noJob(_ id: String) -> ReelError {
        ReelError(.notFound, "no job \(id); list jobs with GET /v1/jobs")
    }
}
