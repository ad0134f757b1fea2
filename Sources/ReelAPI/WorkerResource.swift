/// One slot as `GET /v1/workers` lists it (in a `DataList`): what its worker is doing, on which node.
///
/// Only `slot` and `state` are always there; a key whose value is unknown is left out. In the listing of a server
/// that shares its store with other nodes every slot also says where its node answers (`node_url`, null when the
/// node has not said) and whether its node's heartbeat is late (`stale`); another node's slots add the heartbeat's
/// age. A slot that runs another tenant's job shows `"job": null` and no stage or step.
public struct WorkerResource: Sendable, Equatable, Codable {
    /// A slot's state: starting, ready, busy, restarting, unhealthy or stopped (kept as sent, so a state a newer
    /// node adds still decodes).
    public struct State: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public init(from decoder: any Decoder) throws {
            rawValue = try decoder.singleValueContainer().decode(String.self)
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(rawValue)
        }

        public var description: String { rawValue }

        /// The worker is loading its model.
        public static let starting = State(rawValue: "starting")
        /// Loaded and waiting for a job.
        public static let ready = State(rawValue: "ready")
        /// Running a job.
        public static let busy = State(rawValue: "busy")
        /// Waiting before a restart after the worker exited.
        public static let restarting = State(rawValue: "restarting")
        /// Failed to start several times in a row; still retried, with backoff.
        public static let unhealthy = State(rawValue: "unhealthy")
        /// Stopped for shutdown.
        public static let stopped = State(rawValue: "stopped")
    }

    /// One worker process of a parallel group.
    public struct Rank: Sendable, Equatable, Codable {
        public var rank: Int
        public var device: String
        public var pid: Int32?

        public init(rank: Int, device: String, pid: Int32?) {
            self.rank = rank
            self.device = device
            self.pid = pid
        }
    }

    public var slot: String
    public var node: String?
    /// Where the transformer runs (rank 0's device in a parallel group).
    public var device: String?
    /// `replica`, `split` or `parallel:K`.
    public var placement: String?
    /// `split`: the text encoder's device.
    public var textDevice: String?
    /// `parallel:K`: each rank's device and process, rank 0 first.
    public var ranks: [Rank]?
    /// `parallel:K`: whether the ranks share the job out (GPU groups) or each compute all of it (CPU groups).
    public var sharded: Bool?
    /// The node's placement plan notes.
    public var placementNotes: [String]?
    public var state: State
    public var pid: Int32?
    /// The job the slot runs, when the caller may see it.
    public var job: String?
    /// The slot runs a job of another tenant, whose id the caller may not see: `"job": null` on the wire.
    public var jobWithheld: Bool
    public var step: Int?
    public var totalSteps: Int?
    public var stage: String?
    public var stepsPerSecond: Double?
    public var freeMemoryBytes: Int64?
    public var totalMemoryBytes: Int64?
    public var restarts: Int?
    public var lastError: String?
    /// Why a ready slot takes no job now (its disk is too full).
    public var waiting: String?
    /// When the slot entered its state, as the node wrote it (an ISO 8601 date, passed on as text).
    public var since: String?
    /// Where the slot's node answers; in a listing of several nodes only, where it is always present (maybe null).
    public var nodeURL: String?
    /// Whether the slot's node's heartbeat is older than the server allows; in a listing of several nodes only.
    public var stale: Bool?
    /// Another node's slot: how old that node's heartbeat is, in seconds to one decimal.
    public var heartbeatAgeSeconds: Double?

    public init(
        slot: String, node: String? = nil, device: String? = nil, placement: String? = nil, textDevice: String? = nil,
        ranks: [Rank]? = nil, sharded: Bool? = nil, placementNotes: [String]? = nil, state: State, pid: Int32? = nil,
        job: String? = nil, jobWithheld: Bool = false, step: Int? = nil, totalSteps: Int? = nil, stage: String? = nil,
        stepsPerSecond: Double? = nil, freeMemoryBytes: Int64? = nil, totalMemoryBytes: Int64? = nil,
        restarts: Int? = nil, lastError: String? = nil, waiting: String? = nil, since: String? = nil,
        nodeURL: String? = nil, stale: Bool? = nil, heartbeatAgeSeconds: Double? = nil
    ) {
        self.slot = slot
        self.node = node
        self.device = device
        self.placement = placement
        self.textDevice = textDevice
        self.ranks = ranks
        self.sharded = sharded
        self.placementNotes = placementNotes
        self.state = state
        self.pid = pid
        self.job = job
        self.jobWithheld = jobWithheld
        self.step = step
        self.totalSteps = totalSteps
        self.stage = stage
        self.stepsPerSecond = stepsPerSecond
        self.freeMemoryBytes = freeMemoryBytes
        self.totalMemoryBytes = totalMemoryBytes
        self.restarts = restarts
        self.lastError = lastError
        self.waiting = waiting
        self.since = since
        self.nodeURL = nodeURL
        self.stale = stale
        self.heartbeatAgeSeconds = heartbeatAgeSeconds
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
        case nodeURL = "node_url"
        case stale
        case heartbeatAgeSeconds = "heartbeat_age_seconds"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        slot = try container.decode(String.self, forKey: .slot)
        node = try container.decodeIfPresent(String.self, forKey: .node)
        device = try container.decodeIfPresent(String.self, forKey: .device)
        placement = try container.decodeIfPresent(String.self, forKey: .placement)
        textDevice = try container.decodeIfPresent(String.self, forKey: .textDevice)
        ranks = try container.decodeIfPresent([Rank].self, forKey: .ranks)
        sharded = try container.decodeIfPresent(Bool.self, forKey: .sharded)
        placementNotes = try container.decodeIfPresent([String].self, forKey: .placementNotes)
        state = try container.decode(State.self, forKey: .state)
        pid = try container.decodeIfPresent(Int32.self, forKey: .pid)
        job = try container.decodeIfPresent(String.self, forKey: .job)
        jobWithheld = try container.contains(.job) && container.decodeNil(forKey: .job)
        step = try container.decodeIfPresent(Int.self, forKey: .step)
        totalSteps = try container.decodeIfPresent(Int.self, forKey: .totalSteps)
        stage = try container.decodeIfPresent(String.self, forKey: .stage)
        stepsPerSecond = try container.decodeIfPresent(Double.self, forKey: .stepsPerSecond)
        freeMemoryBytes = try container.decodeIfPresent(Int64.self, forKey: .freeMemoryBytes)
        totalMemoryBytes = try container.decodeIfPresent(Int64.self, forKey: .totalMemoryBytes)
        restarts = try container.decodeIfPresent(Int.self, forKey: .restarts)
        lastError = try container.decodeIfPresent(String.self, forKey: .lastError)
        waiting = try container.decodeIfPresent(String.self, forKey: .waiting)
        since = try container.decodeIfPresent(String.self, forKey: .since)
        nodeURL = try container.decodeIfPresent(String.self, forKey: .nodeURL)
        stale = try container.decodeIfPresent(Bool.self, forKey: .stale)
        heartbeatAgeSeconds = try container.decodeIfPresent(Double.self, forKey: .heartbeatAgeSeconds)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(slot, forKey: .slot)
        try container.encodeIfPresent(node, forKey: .node)
        try container.encodeIfPresent(device, forKey: .device)
        try container.encodeIfPresent(placement, forKey: .placement)
        try container.encodeIfPresent(ranks, forKey: .ranks)
        try container.encodeIfPresent(sharded, forKey: .sharded)
        try container.encode(state, forKey: .state)
        try container.encodeIfPresent(pid, forKey: .pid)
        if let job {
            try container.encode(job, forKey: .job)
        } else if jobWithheld {
            try container.encodeNil(forKey: .job)
        }
        try container.encodeIfPresent(step, forKey: .step)
        try container.encodeIfPresent(stage, forKey: .stage)
        try container.encodeIfPresent(restarts, forKey: .restarts)
        try container.encodeIfPresent(since, forKey: .since)
        try container.encodeIfPresent(waiting, forKey: .waiting)
        try container.encodeIfPresent(textDevice, forKey: .textDevice)
        try container.encodeIfPresent(placementNotes, forKey: .placementNotes)
        try container.encodeIfPresent(totalSteps, forKey: .totalSteps)
        try container.encodeIfPresent(stepsPerSecond, forKey: .stepsPerSecond)
        try container.encodeIfPresent(freeMemoryBytes, forKey: .freeMemoryBytes)
        try container.encodeIfPresent(totalMemoryBytes, forKey: .totalMemoryBytes)
        try container.encodeIfPresent(lastError, forKey: .lastError)
        // In a listing of several nodes, every slot says where its node is, null when unknown.
        if stale != nil {
            try container.encode(nodeURL, forKey: .nodeURL)
        } else {
            try container.encodeIfPresent(nodeURL, forKey: .nodeURL)
        }
        try container.encodeIfPresent(stale, forKey: .stale)
        try container.encodeIfPresent(heartbeatAgeSeconds, forKey: .heartbeatAgeSeconds)
    }
}
