import Foundation
import ReelCore

/// A batch as `GET /v1/batches/{id}` shows it (`"object": "batch"`): counts by state, each accepted row's job,
/// the rejected rows, throughput so far and time left.
public struct BatchResource: Sendable, Equatable, Codable {
    /// An accepted row and its job as it is now; a key whose value would be null is left out.
    public struct Row: Sendable, Equatable, Codable {
        public var row: Int
        public var id: String
        /// Absent when the store no longer has the job.
        public var state: JobState?
        /// Set only while the job runs.
        public var progress: JobResource.Progress?
        /// Set only once the job has succeeded.
        public var videoURL: String?
        /// The failed job's message.
        public var error: String?

        public init(
            row: Int, id: String, state: JobState?, progress: JobResource.Progress?, videoURL: String?,
            error: String?
        ) {
            self.row = row
            self.id = id
            self.state = state
            self.progress = progress
            self.videoURL = videoURL
            self.error = error
        }

        enum CodingKeys: String, CodingKey {
            case row, id, state, progress, error
            case videoURL = "video_url"
        }
    }

    public var id: String
    /// Always `batch`.
    public var object = "batch"
    public var createdAt: Date
    /// Every row, accepted or rejected.
    public var total: Int
    /// The accepted rows' jobs by state; every state has a count, 0 included.
    public var counts: [String: Int]
    public var jobs: [Row]
    public var rejected: [RejectedRow]
    /// Whether every accepted row's job has ended.
    public var done: Bool
    /// Succeeded jobs per hour since the first started (null before one succeeds).
    public var videosPerHour: Double?
    /// At that rate, until every job has ended (0 once done; null before one succeeds).
    public var secondsLeft: Double?

    public init(
        id: String, createdAt: Date, total: Int, counts: [String: Int], jobs: [Row], rejected: [RejectedRow],
        done: Bool, videosPerHour: Double?, secondsLeft: Double?
    ) {
        self.id = id
        self.createdAt = createdAt
        self.total = total
        self.counts = counts
        self.jobs = jobs
        self.rejected = rejected
        self.done = done
        self.videosPerHour = videosPerHour
        self.secondsLeft = secondsLeft
    }

    /// The number of accepted rows' jobs in `state`.
    public func count(_ state: JobState) -> Int { counts[state.rawValue] ?? 0 }

    enum CodingKeys: String, CodingKey {
        case id, object, total, counts, jobs, rejected, done
        case createdAt = "created_at"
        case videosPerHour = "videos_per_hour"
        case secondsLeft = "seconds_left"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(object, forKey: .object)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(total, forKey: .total)
        try container.encode(counts, forKey: .counts)
        try container.encode(jobs, forKey: .jobs)
        try container.encode(rejected, forKey: .rejected)
        try container.encode(done, forKey: .done)
        try container.encode(videosPerHour, forKey: .videosPerHour)
        try container.encode(secondsLeft, forKey: .secondsLeft)
    }
}
