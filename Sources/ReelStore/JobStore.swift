import Foundation
import ReelCore

/// Durable storage of jobs with leases: the one place that decides who runs what.
///
/// Every method is atomic. Methods that take a `Lease` do nothing and return false when the lease is no longer the
/// job's current one (the job was requeued, cancelled or finished meanwhile): a late answer from a dead attempt
/// changes nothing.
///
/// Time: the caller passes `now`, and the leases it asks for as dates (`leaseExpiresAt`, `until`). A store on one
/// machine (SQLite, memory) keeps those dates as given, so tests and replays are deterministic. A store that several
/// machines share cannot trust any one machine's clock: `PostgresJobStore` in its default `TimeSource.database`
/// takes every date it writes from the database's clock, keeps only each lease's length (`leaseExpiresAt - now`),
/// and judges expiry in `recoverExpired` by the database's clock, whatever `now` the caller passes; with
/// `TimeSource.caller` it keeps the caller's dates like the others (the shared store tests use it). Either way a
/// method's result carries the dates the store kept. Dates are kept as a Double of seconds since 1970: to well under a
/// microsecond, in order.
public protocol JobStore: Sendable {
    /// Adds a job. With an idempotency key already used by the same request digest, returns the existing job and
    /// `created == false`; with a different digest, throws `JobStoreError.idempotencyConflict`. An id already in
    /// use throws `JobStoreError.duplicateID`.
    func enqueue(_ job: NewJob, now: Date) async throws -> (job: Job, created: Bool)

    /// Adds many jobs in one transaction: all or none. Each follows `enqueue`'s idempotency rules; all share `now`,
    /// so their order among themselves is their ids' order.
    func enqueueAll(_ jobs: [NewJob], now: Date) async throws -> [Job]

    func job(id: String) async throws -> Job?

    /// Jobs newest first (creation time, then id, descending), optionally of one state; `before` is the id of the
    /// last job of the previous page (keyset paging: a page never repeats or skips a job because others were added
    /// meanwhile). Throws `JobStoreError.notFound` when `before` names no job.
    func jobs(state: JobState?, limit: Int, before: String?) async throws -> [Job]

    /// Jobs of one batch, oldest first.
    func jobs(batchID: String) async throws -> [Job]

    /// One page of jobs as `query` asks: of one state and one owner when set, in its order, after its cursor.
    /// Throws `JobStoreError.notFound` when `after` names no job, or a job of another owner than the query's.
    func jobs(matching query: JobQuery) async throws -> [Job]

    /// How many jobs of one owner are in each state; every state is a key, with 0 when it has none.
    func counts(owner: String) async throws -> [JobState: Int]

    /// Removes a finished (terminal) job and its event log for good; a job still queued or running stays.
    func delete(id: String) async throws -> JobDeletion

    /// How many jobs are in each state; every state is a key, with 0 when it has none.
    func counts() async throws -> [JobState: Int]

    /// Atomically takes the queued job of highest priority, then oldest, then lowest id, marks it running under a
    /// new lease for `owner` until `leaseExpiresAt` on `slot`, counts the attempt, sets `startedAt` to `now` (the
    /// latest attempt's start) and clears the previous attempt's progress. Nil when nothing is queued. No two
    /// claimers ever get the same job.
    ///
    /// With an `affinity`, the claimer holds a LoRA set, and the oldest queued job of the head's priority that uses
    /// the same set is taken before the head, unless a job ahead of it has been passed over for `window` seconds
    /// already (`ClaimAffinity`). Jobs are never taken across priorities.
    func claim(
        owner: String, slot: String, leaseExpiresAt: Date, now: Date, affinity: ClaimAffinity?
    ) async throws -> (job: Job, lease: Lease)?

    /// Extends a lease and records progress. False when the lease is no longer current.
    func renew(_ lease: Lease, until: Date, progress: JobProgress?, now: Date) async throws -> Bool

    /// Marks the job succeeded with its outputs, even when a cancel was requested meanwhile (the video exists).
    /// False when the lease is no longer current.
    func complete(_ lease: Lease, outputs: JobOutputs, now: Date) async throws -> Bool

    /// Ends an attempt that failed, keeping `code` and `message` as the job's last error. With `retry`, the job
    /// goes back to the queue (or ends cancelled when a cancel was requested meanwhile); otherwise it fails for
    /// good. `memorySaving` sets the flag, which nothing clears later. False when the lease is no longer current.
    func fail(
        _ lease: Lease, code: String, message: String, retry: Bool, memorySaving: Bool, now: Date
    )
        async throws -> Bool

    /// Gives a job back to the queue without counting the attempt (a graceful shutdown stopped it); a job whose
    /// cancel was requested ends cancelled instead. False when the lease is no longer current.
    func release(_ lease: Lease, now: Date) async throws -> Bool

    /// Marks a running job cancelled once its worker stopped. False when the lease is no longer current.
    func finishCancelled(_ lease: Lease, now: Date) async throws -> Bool

    /// Cancels a job: a queued one at once; a running one is flagged (`cancelRequested`) and ends when its worker
    /// stops. A terminal job is returned unchanged. Nil when there is no such job.
    func cancel(id: String, now: Date) async throws -> Job?

    /// Requeues running jobs whose lease expired before `now` (their owner died), fails those that have used
    /// `maxAttempts` (code `attempts_exhausted`), and ends cancelled those whose cancel was requested. Returns the
    /// jobs it changed.
    func recoverExpired(now: Date, maxAttempts: Int) async throws -> [Job]

    /// Requeues, or fails after `maxAttempts`, every running job whose lease owner is `owner` or starts with
    /// `owner + "/"`, whatever its lease's expiry: what a restarted node does with the jobs of its previous life.
    /// A job whose cancel was requested ends cancelled. Returns the jobs it changed.
    func recoverOwned(by owner: String, now: Date, maxAttempts: Int) async throws -> [Job]

    /// A job's event log in order. Every state change appends to it in the same transaction; progress does not.
    /// Empty for an unknown job.
    func events(jobID: String) async throws -> [JobEvent]

    /// Appends to a job's event log. Throws `JobStoreError.notFound` for an unknown job.
    func appendEvent(jobID: String, kind: String, message: String?, now: Date) async throws

    // MARK: Batches

    /// Adds a batch: its manifest and the jobs of its accepted rows, in one transaction (all or none), so that no
    /// crash leaves jobs without their manifest or a manifest without its jobs. The jobs follow `enqueueAll`'s rules,
    /// share `now` and are tagged with the manifest's id (whatever `batchID` they carried); the manifest is kept with
    /// the jobs' creation time as its `createdAt`, and returned as kept. Throws `JobStoreError.duplicateID` when a
    /// batch of that id exists.
    func enqueueBatch(
        _ manifest: BatchManifest, jobs: [NewJob], now: Date
    ) async throws
        -> (manifest: BatchManifest, jobs: [Job])

    /// The manifest of a batch; nil when the store has no batch of that id.
    func batch(id: String) async throws -> BatchManifest?

    /// Adds a manifest as it is (its `createdAt` kept), without jobs, unless the store has a batch of its id: how
    /// the manifest files of older versions come into the store. True when it was added.
    func importBatch(_ manifest: BatchManifest) async throws -> Bool

    // MARK: Images

    // The bytes of the images jobs start from, kept in the store so that every node sharing it can read them: on a
    // cluster a job submitted to one node may run on another, which reads its images from here into its own
    // `ImageStore` (see `ImageLibrary`). An image is named by the SHA-256 of its bytes. Retention: an image is kept
    // while a job names it (`spec.image` or `spec.lastImage`), and for `unusedFor` after it was last stored or used.

    /// Keeps an image's bytes; the caller has checked them (`ImageHeader`) and that they hash to `reference.sha256`.
    /// Idempotent: an image already stored stays one row, as it was, marked used (`markImageUsed`). True when it is
    /// new.
    func putImage(_ reference: ImageReference, bytes: [UInt8], now: Date) async throws -> Bool

    /// The bytes of the image of this SHA-256 (lowercase hex); nil when the store has none.
    func imageBytes(sha256: String) async throws -> [UInt8]?

    /// Marks a stored image as used at `now`, as a submission that names it does before its job is queued, so that
    /// `deleteUnusedImages` leaves it alone meanwhile. False when the store has no such image.
    func markImageUsed(sha256: String, now: Date) async throws -> Bool

    /// Deletes, in one statement, every image that no job names and that was neither stored nor used in the last
    /// `unusedFor` seconds before `now`; returns how many. Safe with several nodes sweeping and submitting at once:
    /// an image a job names is never deleted, and a submission marks its images used before queueing its job.
    func deleteUnusedImages(unusedFor: TimeInterval, now: Date) async throws -> Int

    // MARK: Updates

    /// Every change this store commits from now on, as a `JobUpdate`, published after its commit (on PostgreSQL by
    /// whichever node made it, to every node), while the stream is iterated: the one source of job events.
    func updates() -> AsyncStream<JobUpdate>

    /// Publishes an update that is not stored (a running job's progress) to every `updates()` subscriber: this
    /// process's, and on PostgreSQL every node's.
    func publish(_ update: JobUpdate) async

    /// Keeps the updates of other processes coming while it runs (PostgreSQL's `LISTEN`); returns at once for a
    /// store whose updates are all local. Run it for as long as `updates()` should hear other nodes.
    func relayUpdates() async

    /// How many `updates()` streams are open (each open `/v1/events` holds one).
    var updateSubscriberCount: Int { get }
}

/// What a listing asks for: which jobs, in which order, from where.
public struct JobQuery: Sendable, Equatable {
    public enum Order: Sendable, Equatable {
        /// Creation time, then id, descending: the order of `jobs(state:limit:before:)`.
        case newestFirst
        /// Creation time, then id, ascending.
        case oldestFirst
    }

    public var state: JobState?
    /// Only this tenant's jobs, when set.
    public var owner: String?
    public var order: Order
    /// The id of the last job of the previous page (keyset paging, as `jobs(state:limit:before:)`).
    public var after: String?
    public var limit: Int

    public init(
        state: JobState? = nil, owner: String? = nil, order: Order = .newestFirst, after: String? = nil, limit: Int
    ) {
        self.state = state
        self.owner = owner
        self.order = order
        self.after = after
        self.limit = limit
    }

    /// Whether `job` passes the query's filters (its cursor aside).
    func admits(_ job: Job) -> Bool {
        (state == nil || job.state == state) && (owner == nil || job.owner == owner)
    }
}

/// What `delete(id:)` did.
public enum JobDeletion: Sendable, Equatable {
    /// The job, as it was, and its event log are gone.
    case deleted(Job)
    /// The job is still queued or running and was left alone; cancel it first.
    case notFinished(Job)
    case notFound
}

public struct JobStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case idempotencyConflict, duplicateID, notFound, corrupt
        /// The database's disk is full: nothing was written (the transaction rolled back), so nothing stored
        /// before is lost, and writes succeed again once there is space.
        case diskFull
        /// The database stayed locked by another connection past the busy (or lock) timeout; retry later.
        case busy
        /// The database cannot be read or written at all (its disk failed, went away, or became read-only).
        case unavailable
    }
    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

extension JobStore {
    /// Claims in plain queue order (no affinity).
    public func claim(
        owner: String, slot: String, leaseExpiresAt: Date, now: Date
    ) async throws -> (
        job: Job, lease: Lease
    )? {
        try await claim(owner: owner, slot: slot, leaseExpiresAt: leaseExpiresAt, now: now, affinity: nil)
    }
}
