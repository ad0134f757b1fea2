import Foundation

/// How a node's devices are turned into slots (`--placement`).
public enum Placement: Sendable, Equatable, CustomStringConvertible {
    /// One worker per device, each running the whole pipeline.
    case replica
    /// Pairs of devices: the text encoder on the first, the transformer and VAE on the second; the encoder prepares
    /// the next job's prompt while the other device denoises.
    case split
    /// Groups of K devices run one job together (context parallelism over torch.distributed).
    case parallel(Int)
    /// Chosen from device memory, the model's size and the queue (`AutoPlacement.choose`).
    case auto

    public static func parse(_ text: String) throws(PlacementError) -> Placement {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        switch trimmed {
        case "replica", "replicas": return .replica
        case "split": return .split
        case "auto": return .auto
        default:
            guard trimmed.hasPrefix("parallel") else {
                throw PlacementError(
                    "--placement: '\(text)' is not a placement; use replica, split, parallel:K or auto")
            }
            let rest = trimmed.dropFirst("parallel".count)
            guard rest.first == ":", let k = Int(rest.dropFirst()), k >= 2 else {
                throw PlacementError(
                    "--placement: '\(text)' needs a group size of 2 or more after the colon, as in parallel:2")
            }
            return .parallel(k)
        }
    }

    public var description: String {
        switch self {
        case .replica: "replica"
        case .split: "split"
        case .parallel(let k): "parallel:\(k)"
        case .auto: "auto"
        }
    }
}

public struct PlacementError: Error, CustomStringConvertible, Sendable, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
