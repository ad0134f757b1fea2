import Foundation

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

    /// The engine's name of PNG frame `number` (from 1) in `framesDirectory`, without `.png`: the number
    /// zero-padded to six digits.
    public static func frameName(_ number: Int) -> String {
        let digits = String(number)
        return String(repeating: "0", count: max(0, 6 - digits.count)) + digits
    }
}
