import Foundation

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
