import Foundation
import ReelCore
import Synchronization

/// A job's place in its life: queued → running → succeeded | failed | cancelled (running may return to queued).
public enum JobState: String, Sendable, Codable, CaseIterable {
    case queued, running, succeeded, failed, cancelled

    /// A terminal job never changes again.
    public var isTerminal: Bool { self == .succeeded || self == .failed || self == .cancelled }
}

/// How far a running job has got.
public struct JobProgress: Sendable, Equatable, Codable {
    public var stage: String
    public var step: Int
    public var total: Int

    public init(stage: String, step: Int, total: Int) {
        self.stage = stage
        self.step = step
        self.total = total
    }
}

/// Where a succeeded job's files are, and how long each stage took.
public struct JobOutputs: Sendable, Equatable, Codable {
    public var directory: String
    public var video: String
    public var metadata: String
    public var framesDirectory: String?
    public var frameCount: Int?
    public var secondsPerStage: [String: Double]

    public init(
        directory: String, video: String, metadata: String, framesDirectory: String? = nil, frameCount: Int? = nil,
        secondsPerStage: [String: Double] = [:]
    ) {
        self.directory = directory
        self.video = video
        self.metadata = metadata
        self.framesDirectory = framesDirectory
        self.frameCount = frameCount
        self.secondsPerStage = secondsPerStage
    }
}

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

/// What a client submits: the spec plus queueing details.
public struct NewJob: Sendable, Equatable {
    public var id: String
    public var spec: GenerationSpec
    public var priority: Int
    public var idempotencyKey: String?
    /// A digest of the request body, to tell a retry of the same request from a different one under the same key.
    public var requestDigest: String?
    public var batchID: String?
    /// The tenant (an API key's id) the job belongs to; nil on a server without keys.
    public var owner: String?

    public init(
        id: String = NewJob.makeID(), spec: GenerationSpec, priority: Int = 0, idempotencyKey: String? = nil,
        requestDigest: String? = nil, batchID: String? = nil, owner: String? = nil
    ) {
        self.id = id
        self.spec = spec
        self.priority = priority
        self.idempotencyKey = idempotencyKey
        self.requestDigest = requestDigest
        self.batchID = batchID
        self.owner = owner
    }

    /// A job id: sortable by creation time (and by order of creation within this process), unguessable.
    public static func makeID(now: Date = Date()) -> String {
        let millis = UInt64(max(0, now.timeIntervalSince1970 * 1000))
        let sequence = idSequence.add(1, ordering: .relaxed).newValue % 1_679_616  // 36^4
        let random = UInt64.random(in: 0..<(1 << 40))
        return "job_" + pad(String(millis, radix: 36), 9) + pad(String(sequence, radix: 36), 4)
            + pad(String(random, radix: 36), 8)
    }

    private static let idSequence = Atomic<UInt64>(0)

    private static func pad(_ text: String, _ width: Int) -> String {
        String(repeating: "0", count: max(0, width - text.count)) + text
    }
}

/// The right to finish one attempt of one job. A result is accepted only with the lease that is current.
public struct Lease: Sendable, Equatable, Hashable {
    public var jobID: String
    public var owner: String
    /// The attempt number this lease was granted for; it fences off late results of earlier attempts.
    public var attempt: Int

    public init(jobID: String, owner: String, attempt: Int) {
        self.jobID = jobID
        self.owner = owner
        self.attempt = attempt
    }
}

/// An entry in a job's event log.
public struct JobEvent: Sendable, Equatable, Codable {
    public var jobID: String
    public var sequence: Int64
    public var at: Date
    /// queued, started, progress, succeeded, failed, cancelled, requeued, …
    public var kind: String
    public var message: String?

    public init(jobID: String, sequence: Int64, at: Date, kind: String, message: String? = nil) {
        self.jobID = jobID
        self.sequence = sequence
        self.at = at
        self.kind = kind
        self.message = message
    }
}
