import Foundation

/// Something that happened to a job, as clients see it on the event stream (`GET /v1/events`). The job store
/// publishes one for every change it commits, and only after the commit; on PostgreSQL every node publishes every
/// node's.
public struct JobUpdate: Sendable, Equatable, Codable {
    /// What happened, named as on the wire.
    public struct Kind: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public init(from decoder: any Decoder) throws {
            rawValue = try decoder.singleValueContainer().decode(String.self)
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(rawValue)
        }

        public var description: String { rawValue }

        public static let queued = Kind(rawValue: "queued")
        public static let started = Kind(rawValue: "started")
        /// A denoising step or a stage change of a running attempt; not stored, only published.
        public static let progress = Kind(rawValue: "progress")
        public static let succeeded = Kind(rawValue: "succeeded")
        public static let failed = Kind(rawValue: "failed")
        public static let cancelled = Kind(rawValue: "cancelled")
        public static let requeued = Kind(rawValue: "requeued")
        public static let cancelRequested = Kind(rawValue: "cancel_requested")
        public static let resumed = Kind(rawValue: "resumed")
        public static let checkpointRejected = Kind(rawValue: "checkpoint_rejected")

        /// The kinds after which the job never changes again.
        public var isTerminal: Bool { self == .succeeded || self == .failed || self == .cancelled }
    }

    public var kind: Kind
    public var job: String
    /// The job's state once the change was made.
    public var state: JobState
    public var attempt: Int?
    public var progress: JobProgress?
    public var slot: String?
    /// The job's last error, on `failed` and on a `requeued` that follows a failed attempt.
    public var errorCode: String?
    public var message: String?
    public var at: Date
    /// The tenant the job belongs to, so a stream can show a key only its own jobs. Not shown to clients.
    public var owner: String?

    public init(
        kind: Kind, job: String, state: JobState, attempt: Int? = nil, progress: JobProgress? = nil,
        slot: String? = nil, errorCode: String? = nil, message: String? = nil, at: Date = Date(),
        owner: String? = nil
    ) {
        self.kind = kind
        self.job = job
        self.state = state
        self.attempt = attempt
        self.progress = progress
        self.slot = slot
        self.errorCode = errorCode
        self.message = message
        self.at = at
        self.owner = owner
    }

    /// The update a logged change of `job` publishes: `job` as the change left it.
    public init(kind: String, message: String?, job: Job, at: Date) {
        let kind = Kind(rawValue: kind)
        let failedBefore = kind == .failed || kind == .requeued
        self.init(
            kind: kind, job: job.id, state: job.state, attempt: job.attempts == 0 ? nil : job.attempts,
            slot: job.slot, errorCode: failedBefore ? job.errorCode : nil, message: message, at: at, owner: job.owner)
    }

    enum CodingKeys: String, CodingKey {
        case kind, job, state, attempt, progress, slot, message, at
        case errorCode = "error_code"
    }
}
