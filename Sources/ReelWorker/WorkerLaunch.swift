import ReelCore

/// How to start one engine worker: which device and model, where its data lives.
public struct WorkerLaunch: Sendable, Equatable {
    public var engine: EngineLocation
    public var device: String
    public var model: String
    public var dataDirectory: String
    public var memorySaving: Bool
    /// Where the text encoder lives when it is not `device` (the `split` placement).
    public var textDevice: String?
    /// At most this many GiB of device memory for this worker (`--memory-budget`).
    public var memoryBudgetGiB: Double?
    /// This worker's place in a `parallel:K` group, when it is in one.
    public var group: GroupMembership?
    /// An approximate speed-up to enable (`first-block-cache[:threshold]`); nil for exact math.
    public var approximate: String?
    /// LoRA adapter slots per expert and their rank (`--lora-slots`, `--lora-max-rank`); nil for the engine's
    /// defaults.
    public var loraSlots: Int?
    public var loraMaxRank: Int?
    /// Extra environment variables for the worker (tests set REEL_ENGINE_ALLOW_FAULTS here).
    public var environment: [String: String]

    /// One rank of a group of workers that run each job together over torch.distributed.
    public struct GroupMembership: Sendable, Equatable {
        public var rank: Int
        public var worldSize: Int
        /// The rendezvous every rank of the group joins: `file:///…` or `tcp://127.0.0.1:PORT`.
        public var initMethod: String

        public init(rank: Int, worldSize: Int, initMethod: String) {
            self.rank = rank
            self.worldSize = worldSize
            self.initMethod = initMethod
        }
    }

    public init(
        engine: EngineLocation, device: String, model: String, dataDirectory: String, memorySaving: Bool = false,
        textDevice: String? = nil, memoryBudgetGiB: Double? = nil, group: GroupMembership? = nil,
        environment: [String: String] = [:]
    ) {
        self.engine = engine
        self.device = device
        self.model = model
        self.dataDirectory = dataDirectory
        self.memorySaving = memorySaving
        self.textDevice = textDevice
        self.memoryBudgetGiB = memoryBudgetGiB
        self.group = group
        self.environment = environment
    }

    public var arguments: [String] {
        // A ComfyUI folder's model goes as its folder and a flag per file.
        let modelArguments = (try? ComfyModelSpec.parse(model))?.map(\.workerArguments) ?? ["--model", model]
        var arguments = ["-m", engine.module, "--device", device] + modelArguments + ["--data-dir", dataDirectory]
        if memorySaving { arguments.append("--memory-saving") }
        if let textDevice { arguments += ["--text-device", textDevice] }
        if let memoryBudgetGiB { arguments += ["--memory-budget", Self.format(memoryBudgetGiB)] }
        if let approximate { arguments += ["--approximate", approximate] }
        if let loraSlots { arguments += ["--lora-slots", String(loraSlots)] }
        if let loraMaxRank { arguments += ["--lora-max-rank", String(loraMaxRank)] }
        if let group {
            arguments += [
                "--rank", String(group.rank), "--world-size", String(group.worldSize), "--dist-init", group.initMethod,
            ]
        }
        return arguments
    }

    /// `24` rather than `24.0`, `7.5` as is.
    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }
}
