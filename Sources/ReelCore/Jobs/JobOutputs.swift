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
}
