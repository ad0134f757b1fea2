/// Approximate speed-ups: they change the video, so they are off unless asked for, and every job.json they touch
/// records them. The engine applies them; this checks the option before any worker starts.
public enum ApproximateSpeedUp {
    /// Each speed-up the engine knows, with its default threshold.
    public static let known: [String: Double] = ["first-block-cache": 0.05]

    /// Checks `first-block-cache` or `first-block-cache:0.08`; returns it unchanged, or throws naming what is wrong.
    public static func validate(_ spec: String) throws(ApproximateSpeedUpError) -> String {
        let parts = spec.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        let name = String(parts[0])
        guard known[name] != nil else {
            throw ApproximateSpeedUpError(
                "--approximate \(spec): unknown; the approximate speed-ups are \(known.keys.sorted().joined(separator: ", "))"
            )
        }
        if parts.count == 2 {
            guard let threshold = Double(parts[1]) else {
                throw ApproximateSpeedUpError("--approximate \(spec): '\(parts[1])' is not a number")
            }
            guard threshold > 0 && threshold < 1 else {
                throw ApproximateSpeedUpError("--approximate \(spec): the threshold must be between 0 and 1")
            }
        }
        return spec
    }
}

public struct ApproximateSpeedUpError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}
