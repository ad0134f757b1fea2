import Foundation

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
