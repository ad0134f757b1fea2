/// The answer to `POST /v1/batches`: the job each valid row became, and what is wrong with the others.
///
/// 201 when the rows were queued; 400 with `queued: false`, a null `id` and an `error` when `atomic=true` and any
/// row is invalid, so nothing was queued.
public struct BatchSubmitted: Sendable, Equatable, Codable {
    /// A row that became a job.
    public struct Accepted: Sendable, Equatable, Codable {
        public var row: Int
        public var job: String

        public init(row: Int, job: String) {
            self.row = row
            self.job = job
        }
    }

    public var id: String?
    /// Always `batch`.
    public var object = "batch"
    public var queued: Bool
    public var accepted: [Accepted]
    public var rejected: [RejectedRow]
    /// Why nothing was queued; absent when the rows were.
    public var error: ErrorBody.Detail?

    public init(id: String?, queued: Bool, accepted: [Accepted], rejected: [RejectedRow], error: ErrorBody.Detail?) {
        self.id = id
        self.queued = queued
        self.accepted = accepted
        self.rejected = rejected
        self.error = error
    }

    enum CodingKeys: String, CodingKey { case id, object, queued, accepted, rejected, error }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(object, forKey: .object)
        try container.encode(queued, forKey: .queued)
        try container.encode(accepted, forKey: .accepted)
        try container.encode(rejected, forKey: .rejected)
        try container.encodeIfPresent(error, forKey: .error)
    }
}
