import Foundation

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
