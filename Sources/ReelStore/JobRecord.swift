import Foundation
import GRDB
import ReelCore

/// A row of table `job`: a `Job` plus the request digest that its idempotency key was first used with.
///
/// The spec, progress and outputs are JSON text columns; dates are REAL seconds since 1970 (a Double keeps well
/// under a millisecond and sorts as time does).
struct JobRecord: Equatable {
    var id: String
    var state: JobState
    var spec: GenerationSpec
    var priority: Int
    var attempts: Int
    var leaseOwner: String?
    var leaseExpiresAt: Date?
    var createdAt: Date
    var startedAt: Date?
    var finishedAt: Date?
    var errorCode: String?
    var errorMessage: String?
    var progress: JobProgress?
    var outputs: JobOutputs?
    var cancelRequested: Bool
    var memorySaving: Bool
    var idempotencyKey: String?
    var requestDigest: String?
    var batchID: String?
    var slot: String?
    /// Added by migration v2; NULL for jobs made before it, or on a server without API keys.
    var owner: String?
    /// Added by migration v3: the node of the latest attempt.
    var node: String?
    /// Added by migration v6: `spec.loraKey`, for the affinity claim; "" for jobs without LoRAs.
    var loraKey: String = ""
    /// Added by migration v6: when a claimer first took a later job of its LoRA set ahead of this queued one; cleared
    /// by every change of the job (a claim among them).
    var passedOverAt: Date?
}

extension JobRecord {
    init(_ job: Job, requestDigest: String?) {
        self.init(
            id: job.id, state: job.state, spec: job.spec, priority: job.priority, attempts: job.attempts,
            leaseOwner: job.leaseOwner, leaseExpiresAt: job.leaseExpiresAt, createdAt: job.createdAt,
            startedAt: job.startedAt, finishedAt: job.finishedAt, errorCode: job.errorCode,
            errorMessage: job.errorMessage, progress: job.progress, outputs: job.outputs,
            cancelRequested: job.cancelRequested, memorySaving: job.memorySaving, idempotencyKey: job.idempotencyKey,
            requestDigest: requestDigest, batchID: job.batchID, slot: job.slot, owner: job.owner, node: job.node,
            loraKey: job.spec.loraKey, passedOverAt: nil)
    }

    var job: Job {
        Job(
            id: id, state: state, spec: spec, priority: priority, attempts: attempts, leaseOwner: leaseOwner,
            leaseExpiresAt: leaseExpiresAt, createdAt: createdAt, startedAt: startedAt, finishedAt: finishedAt,
            errorCode: errorCode, errorMessage: errorMessage, progress: progress, outputs: outputs,
            cancelRequested: cancelRequested, memorySaving: memorySaving, idempotencyKey: idempotencyKey,
            batchID: batchID, slot: slot, owner: owner, node: node)
    }
}

extension JobRecord: Codable {
    enum CodingKeys: String, CodingKey {
        case id, state, spec, priority, attempts
        case leaseOwner = "lease_owner"
        case leaseExpiresAt = "lease_expires_at"
        case createdAt = "created_at"
        case startedAt = "started_at"
        case finishedAt = "finished_at"
        case errorCode = "error_code"
        case errorMessage = "error_message"
        case progress, outputs
        case cancelRequested = "cancel_requested"
        case memorySaving = "memory_saving"
        case idempotencyKey = "idempotency_key"
        case requestDigest = "request_digest"
        case batchID = "batch_id"
        case slot, owner, node
        case loraKey = "lora_key"
        case passedOverAt = "passed_over_at"
    }
}

extension JobRecord: FetchableRecord, PersistableRecord {
    static let databaseTableName = "job"

    enum Columns {
        static let id = Column(CodingKeys.id)
        static let state = Column(CodingKeys.state)
        static let spec = Column(CodingKeys.spec)
        static let priority = Column(CodingKeys.priority)
        static let attempts = Column(CodingKeys.attempts)
        static let leaseOwner = Column(CodingKeys.leaseOwner)
        static let leaseExpiresAt = Column(CodingKeys.leaseExpiresAt)
        static let createdAt = Column(CodingKeys.createdAt)
        static let startedAt = Column(CodingKeys.startedAt)
        static let finishedAt = Column(CodingKeys.finishedAt)
        static let errorCode = Column(CodingKeys.errorCode)
        static let errorMessage = Column(CodingKeys.errorMessage)
        static let progress = Column(CodingKeys.progress)
        static let outputs = Column(CodingKeys.outputs)
        static let cancelRequested = Column(CodingKeys.cancelRequested)
        static let memorySaving = Column(CodingKeys.memorySaving)
        static let idempotencyKey = Column(CodingKeys.idempotencyKey)
        static let requestDigest = Column(CodingKeys.requestDigest)
        static let batchID = Column(CodingKeys.batchID)
        static let slot = Column(CodingKeys.slot)
        static let owner = Column(CodingKeys.owner)
        static let node = Column(CodingKeys.node)
        static let loraKey = Column(CodingKeys.loraKey)
        static let passedOverAt = Column(CodingKeys.passedOverAt)
    }

    static func databaseDateEncodingStrategy(for column: String) -> DatabaseDateEncodingStrategy {
        .timeIntervalSince1970
    }

    static func databaseDateDecodingStrategy(for column: String) -> DatabaseDateDecodingStrategy {
        .timeIntervalSince1970
    }
}

extension JobState: DatabaseValueConvertible {}

extension Date {
    /// The value a date column holds, for comparing a column with a date in a query.
    var databaseSeconds: Double { timeIntervalSince1970 }
}

/// Reusable requests on table `job`.
extension DerivableRequest<JobRecord> {
    /// Queued jobs in the order they are claimed.
    func claimable() -> Self {
        filter(JobRecord.Columns.state == JobState.queued).inClaimOrder()
    }

    /// Higher priority first, then older, then lower id: the order the index `job_claim` serves.
    func inClaimOrder() -> Self {
        order(JobRecord.Columns.priority.desc, JobRecord.Columns.createdAt, JobRecord.Columns.id)
    }

    func running() -> Self {
        filter(JobRecord.Columns.state == JobState.running)
    }

    /// Newest first, then by id descending: the listing and paging order.
    func newestFirst() -> Self {
        order(JobRecord.Columns.createdAt.desc, JobRecord.Columns.id.desc)
    }

    /// Oldest first, then by id.
    func oldestFirst() -> Self {
        order(JobRecord.Columns.createdAt, JobRecord.Columns.id)
    }

    /// Jobs listed after `cursor` in oldest-first order.
    func listedOldestFirst(after cursor: JobRecord) -> Self {
        let createdAt = JobRecord.Columns.createdAt
        let seconds = cursor.createdAt.databaseSeconds
        return filter(createdAt > seconds || (createdAt == seconds && JobRecord.Columns.id > cursor.id))
    }

    /// Jobs listed after `cursor` in newest-first order.
    func listed(after cursor: JobRecord) -> Self {
        let createdAt = JobRecord.Columns.createdAt
        let seconds = cursor.createdAt.databaseSeconds
        return filter(createdAt < seconds || (createdAt == seconds && JobRecord.Columns.id < cursor.id))
    }
}
