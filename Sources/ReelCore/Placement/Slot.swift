import Foundation

/// One place a worker runs: a device, and the name it is known by.
public struct Slot: Sendable, Equatable, Hashable, Codable {
    /// Unique within a node: `cuda:0`, or `cpu-1` when several CPU slots share the host.
    public var id: String
    /// The device the worker is started with: `cpu`, `cuda:0`, …; rank 0's device in a parallel group.
    public var device: String
    /// `split`: where the text encoder lives; the transformer and VAE live on `device`.
    public var textDevice: String?
    /// `parallel:K`: every rank's device, rank 0 first; nil for a slot of one worker.
    public var rankDevices: [String]?

    public init(id: String, device: String, textDevice: String? = nil, rankDevices: [String]? = nil) {
        self.id = id
        self.device = device
        self.textDevice = textDevice
        self.rankDevices = rankDevices
    }

    /// How many worker processes run this slot's jobs together.
    public var worldSize: Int { rankDevices?.count ?? 1 }

    /// `replica`, `split` or `parallel`.
    public var placement: String {
        if worldSize > 1 { return "parallel" }
        return textDevice == nil ? "replica" : "split"
    }

    /// One line for the plan printout.
    public var summary: String {
        if let ranks = rankDevices, ranks.count > 1 {
            return "parallel group of \(ranks.count): "
                + ranks.enumerated().map { "rank \($0) \($1)" }
                .joined(separator: ", ")
        }
        if let textDevice { return "split: text encoder on \(textDevice), transformer and VAE on \(device)" }
        return "replica on \(device)"
    }
}
