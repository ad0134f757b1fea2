import Foundation
import ReelCore
import Synchronization

/// What one slot's worker is doing, for `/v1/workers` and readiness.
public struct WorkerStatus: Sendable, Equatable, Codable {
    public enum State: String, Sendable, Codable {
        /// The worker is loading its model.
        case starting
        /// Loaded and waiting for a job.
        case ready
        /// Running a job.
        case busy
        /// Waiting before a restart after the worker exited.
        case restarting
        /// Failed to start several times in a row; still retried, with backoff.
        case unhealthy
        /// Stopped for shutdown.
        case stopped
    }

    /// One worker process of a parallel group.
    public struct Rank: Sendable, Equatable, Codable {
        public var rank: Int
        public var device: String
        public var pid: Int32?
    }

    public var slot: String
    public var node: String
    /// Where the transformer runs (rank 0's device in a parallel group).
    public var device: String
    /// `replica`, `split` or `parallel:K`.
    public var placement: String
    /// `split`: the text encoder's device.
    public var textDevice: String?
    /// `parallel:K`: each rank's device and process, rank 0 first.
    public var ranks: [Rank]?
    /// `parallel:K`: whether the ranks share the job out (GPU groups) or each compute all of it (CPU groups, which
    /// only check each other).
    public var sharded: Bool?
    /// The node's placement plan notes: why `auto` chose this layout, devices left over, CPU groups not sharded.
    public var placementNotes: [String]?
    public var state: State
    public var pid: Int32?
    public var job: String?
    public var step: Int?
    public var totalSteps: Int?
    public var stage: String?
    public var stepsPerSecond: Double?
    public var freeMemoryBytes: Int64?
    public var totalMemoryBytes: Int64?
    public var restarts: Int
    public var lastError: String?
    /// Why a ready slot takes no job now (its disk is too full); nil when it takes jobs.
    public var waiting: String?
    public var since: Date

    public init(slot: Slot, node: String) {
        self.slot = slot.id
        self.node = node
        self.device = slot.device
        self.placement = slot.worldSize > 1 ? "parallel:\(slot.worldSize)" : slot.placement
        self.textDevice = slot.textDevice
        if let devices = slot.rankDevices, devices.count > 1 {
            ranks = devices.enumerated().map { Rank(rank: $0, device: $1, pid: nil) }
            sharded = !devices.allSatisfy { $0 == "cpu" }
        }
        self.state = .starting
        self.restarts = 0
        self.since = Date()
    }

    /// Records each rank's process (nil: none running).
    mutating func setPIDs(_ pids: [Int32]?) {
        pid = pids?.first
        guard var ranks else { return }
        for index in ranks.indices { ranks[index].pid = pids.flatMap { index < $0.count ? $0[index] : nil } }
        self.ranks = ranks
    }

    enum CodingKeys: String, CodingKey {
        case slot, node, device, placement, ranks, sharded, state, pid, job, step, stage, restarts, since, waiting
        case textDevice = "text_device"
        case placementNotes = "placement_notes"
        case totalSteps = "total_steps"
        case stepsPerSecond = "steps_per_second"
        case freeMemoryBytes = "free_memory_bytes"
        case totalMemoryBytes = "total_memory_bytes"
        case lastError = "last_error"
    }
}

/// The current status of every slot, updated by the slot runners.
final class StatusBoard: Sendable {
    private let statuses: Mutex<[String: WorkerStatus]>
    private let order: [String]
    /// Rung whenever a slot's status changes.
    private let changes: Doorbell?

    init(slots: [Slot], node: String, placementNotes: [String] = [], changes: Doorbell? = nil) {
        self.changes = changes
        var initial: [String: WorkerStatus] = [:]
        for slot in slots {
            var status = WorkerStatus(slot: slot, node: node)
            status.placementNotes = placementNotes.isEmpty ? nil : placementNotes
            initial[slot.id] = status
        }
        statuses = Mutex(initial)
        order = slots.map(\.id)
    }

    func update(_ slot: String, _ change: (inout WorkerStatus) -> Void) {
        let changed = statuses.withLock { all -> Bool in
            guard let before = all[slot] else { return false }
            var status = before
            change(&status)
            if status.state != before.state { status.since = Date() }
            all[slot] = status
            return status != before
        }
        if changed { changes?.ring() }
    }

    var snapshot: [WorkerStatus] {
        statuses.withLock { all in order.compactMap { all[$0] } }
    }
}
