import Foundation
import ReelCore
import ReelStore
import ReelWorker

/// Everything the scheduler needs to know to run slots.
public struct SchedulerConfiguration: Sendable {
    /// This node's name; leases are owned by `node/slot`.
    public var node: String
    public var slots: [Slot]
    public var engine: EngineLocation
    public var model: String
    public var dataDirectory: String
    /// After this many claimed attempts a job fails for good.
    public var maxAttempts: Int
    /// A running worker that sends nothing for this long is killed and treated as crashed.
    public var stallTimeout: Duration
    /// A starting worker that is not ready after this long is killed.
    public var startupTimeout: Duration
    /// How long a claim holds without renewal; renewed by progress and while the worker is alive.
    public var leaseDuration: Duration
    /// On shutdown, how long running jobs may go on before they are stopped and left queued.
    public var grace: Duration
    /// Consecutive failed starts after which a slot is shown as unhealthy.
    public var unhealthyAfter: Int
    public var backoff: Backoff
    /// Extra environment for workers (tests enable fault injection through it).
    public var workerEnvironment: [String: String]
    /// Where job directories go; `<dataDirectory>/outputs` when nil.
    public var outputRoot: String?
    /// Workers save a resumable checkpoint every this many denoising steps; nil or 0 for none. Parallel groups
    /// never do.
    public var checkpointEvery: Int?
    /// Every worker caps its device memory at this many GiB (`--memory-budget`).
    public var memoryBudgetGiB: Double?
    /// Every worker loads with the memory-saving settings (the `auto` placement's choice for a model that fits no
    /// single device).
    public var memorySaving: Bool
    /// An approximate speed-up every worker enables (`--approximate`); nil for exact math.
    public var approximate: String?
    /// What the placement plan says beyond the slots (why `auto` chose it, devices left over), for `/v1/workers`.
    public var placementNotes: [String]
    /// `--placement auto`: change the layout of slots as the queue changes; nil to keep `slots` while the node runs.
    public var relayout: Relayout?
    /// A slot takes a job only while the outputs' file system has at least this many bytes free (`--min-free-disk`);
    /// otherwise it waits, and `/v1/workers` says why. Nil: no check.
    public var minFreeDiskBytes: Int64?

    public init(
        node: String, slots: [Slot], engine: EngineLocation, model: String, dataDirectory: String,
        maxAttempts: Int = 3, stallTimeout: Duration = .seconds(300), startupTimeout: Duration = .seconds(1800),
        leaseDuration: Duration = .seconds(60), grace: Duration = .seconds(30), unhealthyAfter: Int = 3,
        backoff: Backoff = Backoff(), workerEnvironment: [String: String] = [:], outputRoot: String? = nil,
        checkpointEvery: Int? = 5, memoryBudgetGiB: Double? = nil, memorySaving: Bool = false,
        placementNotes: [String] = []
    ) {
        self.placementNotes = placementNotes
        self.memoryBudgetGiB = memoryBudgetGiB
        self.memorySaving = memorySaving
        self.outputRoot = outputRoot
        self.checkpointEvery = checkpointEvery
        self.node = node
        self.slots = slots
        self.engine = engine
        self.model = model
        self.dataDirectory = dataDirectory
        self.maxAttempts = maxAttempts
        self.stallTimeout = stallTimeout
        self.startupTimeout = startupTimeout
        self.leaseDuration = leaseDuration
        self.grace = grace
        self.unhealthyAfter = unhealthyAfter
        self.backoff = backoff
        self.workerEnvironment = workerEnvironment
    }

    /// How large an image a job may start from.
    public var imageLimits = ImageLimits.standard
    /// The images jobs start from: `<dataDirectory>/images`.
    public var images: ImageStore { ImageStore(dataDirectory: dataDirectory, limits: imageLimits) }

    /// The LoRA library jobs name their LoRAs from: `<dataDirectory>/loras` unless `--lora-dir` says otherwise.
    public var loraDirectory: String?
    public var loraFiles: LoRALibrary { LoRALibrary(directory: loraDirectory ?? dataDirectory + "/loras") }
    /// Adapter slots per expert and their rank in every worker (`--lora-slots`, `--lora-max-rank`); nil for the
    /// engine's defaults (2 and 64).
    public var loraSlots: Int?
    public var loraMaxRank: Int?
    /// How long a queued job may be passed over for jobs of the LoRA set an idle slot holds (`--affinity-window`);
    /// zero claims in plain queue order.
    public var affinityWindow: Duration = .zero

    /// Where a job's files go.
    public func outputDirectory(jobID: String) -> String {
        (outputRoot ?? dataDirectory + "/outputs") + "/" + jobID
    }
}
