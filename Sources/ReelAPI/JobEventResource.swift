import Foundation

/// One entry of a job's stored event log, as `GET /v1/jobs/{id}/events` lists it (in a `DataList`).
public struct JobEventResource: Sendable, Equatable, Codable {
    public var job: String
    public var sequence: Int64
    public var at: Date
    /// queued, started, succeeded, failed, requeued, cancelled, cancel_requested, …
    public var kind: String
    public var message: String?

    public init(job: String, sequence: Int64, at: Date, kind: String, message: String?) {
        self.job = job
        self.sequence = sequence
        self.at = at
        self.kind = kind
        self.message = message
    }

    enum CodingKeys: String, CodingKey { case job, sequence, at, kind, message }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(job, forKey: .job)
        try container.encode(sequence, forKey: .sequence)
        try container.encode(at, forKey: .at)
        try container.encode(kind, forKey: .kind)
        try container.encode(message, forKey: .message)
    }
}
