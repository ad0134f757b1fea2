import Foundation

/// One video job as the store keeps it.
public struct Job: Sendable, Equatable, Codable, Identifiable {
    public var id: String
    public var state: JobState
    /// The validated, concrete spec the job runs with.
    public var spec: GenerationSpec
    /// Higher runs first; equal priorities run oldest first.
    public var priority: Int
    /// How many times the job has been claimed by a worker.
    public var attempts: Int
    public var leaseOwner: String?
    public var leaseExpiresAt: Date?
    public var createdAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
    /// The last error: why the job failed, or why its latest failed attempt did (kept when it was retried).
    public var errorCode: String?
    public var errorMessage: String?
    /// The running attempt's progress; cleared when an attempt starts or the job is requeued.
    public var progress: JobProgress?
    public var outputs: JobOutputs?
    /// Set when a cancel arrives for a running job; the worker stops at its next step.
    public var cancelRequested: Bool
    /// Run with the engine's memory-saving settings (set after an out-of-memory failure).
    public var memorySaving: Bool
    public var idempotencyKey: String?
    public var batchID: String?
    /// The slot that last ran the job (for example `node-a/cuda:0`).
    public var slot: String?
    /// The tenant the job belongs to (an API key's id), or nil when the server had no keys when it was made.
    public var owner: String?
    /// The node that ran the latest attempt (its lease owner up to the first "/"): a succeeded job's files are on
    /// that node's disk, unless the nodes share their output directory.
    public var node: String?

    public init(
        id: String, state: JobState = .queued, spec: GenerationSpec, priority: Int = 0, attempts: Int = 0,
        leaseOwner: String? = nil, leaseExpiresAt: Date? = nil, createdAt: Date, startedAt: Date? = nil,
        finishedAt: Date? = nil, errorCode: String? = nil, errorMessage: String? = nil, progress: JobProgress? = nil,
        outputs: JobOutputs? = nil, cancelRequested: Bool = false, memorySaving: Bool = false,
        idempotencyKey: String? = nil, batchID: String? = nil, slot: String? = nil, owner: String? = nil,
        node: String? = nil
    ) {
        self.id = id
        self.state = state
        self.spec = spec
        self.priority = priority
        self.attempts = attempts
        self.leaseOwner = leaseOwner
        self.leaseExpiresAt = leaseExpiresAt
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.progress = progress
        self.outputs = outputs
        self.cancelRequested = cancelRequested
        self.memorySaving = memorySaving
        self.idempotencyKey = idempotencyKey
        self.batchID = batchID
        self.slot = slot
        self.owner = owner
        self.node = node
    }
}
