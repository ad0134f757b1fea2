import Foundation

/// One `reel serve` node as a shared store knows it: where it answers, and what its slots were doing at its last
/// heartbeat.
public struct ClusterNode: Sendable, Equatable {
    public var name: String
    /// The URL other nodes send clients to for this node's files (its `--advertise-url`).
    public var url: String
    /// The node's slots as it last reported them: a JSON array the store keeps without reading.
    public var workers: Data
    /// Seconds since the last heartbeat, by the database's clock (so the nodes' own clocks do not matter).
    public var secondsSinceHeartbeat: Double

    public init(name: String, url: String, workers: Data, secondsSinceHeartbeat: Double) {
        self.name = name
        self.url = url
        self.workers = workers
        self.secondsSinceHeartbeat = secondsSinceHeartbeat
    }
}

/// The nodes sharing one store, each refreshed by its own heartbeat. Only a store several machines share (PostgreSQL)
/// offers it.
public protocol ClusterDirectory: Sendable {
    /// Records that `node` is alive at `url` with these slots (a JSON array), stamped with the database's clock.
    func heartbeat(node: String, url: String, workers: Data) async throws

    /// Every node that has sent a heartbeat and not left, by name.
    func nodes() async throws -> [ClusterNode]

    /// Forgets a node that stopped cleanly.
    func removeNode(_ name: String) async throws
}
