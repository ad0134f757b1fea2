import Foundation
import ReelCore

/// The `auto` placement: a pure function of the node's GPUs, the model's size and the queue.
///
/// - No GPU: one replica per CPU device.
/// - The whole model fits one GPU: replicas when at least as many jobs wait as there are GPUs; otherwise parallel
///   groups, as many as there are waiting jobs (at least one), of the largest size that divides the model's heads.
/// - Only the transformer and VAE fit one GPU (and the text encoder fits another): split pairs.
/// - Not even that: replicas with the memory-saving settings (model offload to CPU memory).
///
/// `reel batch` decides once, from the rows it runs. `reel serve` decides at start from the jobs queued then, and
/// again as the queue changes (`Relayout`, `--relayout-after`): changing layout costs a model load per GPU, so a
/// layout with more slots is changed to once it has been wanted for a while, one with fewer only while the node is
/// idle.
public enum AutoPlacement {
    public struct Inputs: Sendable, Equatable {
        /// GPUs on the node; 0 for CPU only.
        public var gpus: Int
        /// Memory of each GPU, or the per-worker budget when that is smaller; nil when unknown.
        public var deviceMemoryBytes: Int64?
        public var model: ModelFootprint
        /// Jobs queued when the node starts.
        public var queueDepth: Int

        public init(gpus: Int, deviceMemoryBytes: Int64?, model: ModelFootprint, queueDepth: Int) {
            self.gpus = gpus
            self.deviceMemoryBytes = deviceMemoryBytes
            self.model = model
            self.queueDepth = queueDepth
        }
    }

    public struct Decision: Sendable, Equatable {
        public var placement: Placement
        public var memorySaving: Bool
        public var reason: String
    }

    public static func choose(_ inputs: Inputs) -> Decision {
        let model = inputs.model
        guard inputs.gpus > 0 else {
            return Decision(placement: .replica, memorySaving: false, reason: "auto: no GPU, so CPU replicas")
        }
        guard let memory = inputs.deviceMemoryBytes, memory > 0 else {
            return Decision(
                placement: .replica, memorySaving: false,
                reason: "auto: GPU memory unknown, so one replica per GPU")
        }
        let gib = { (bytes: Int64) in String(format: "%.0f GiB", Double(bytes) / Double(1 << 30)) }
        if model.totalBytes > memory {
            if inputs.gpus >= 2 && model.denoiserBytes <= memory && model.textEncoderBytes <= memory {
                return Decision(
                    placement: .split, memorySaving: false,
                    reason: "auto: the model needs about \(gib(model.totalBytes)) but a GPU has \(gib(memory)); the "
                        + "transformer and VAE (\(gib(model.denoiserBytes))) fit one, so the text encoder goes on another"
                )
            }
            return Decision(
                placement: .replica, memorySaving: true,
                reason: "auto: the model needs about \(gib(model.totalBytes)) but a GPU has \(gib(memory))"
                    + (inputs.gpus >= 2 ? " and even the transformer and VAE do not fit one" : "")
                    + ", so replicas with the memory-saving settings (model offload)")
        }
        guard inputs.gpus >= 2 else {
            return Decision(placement: .replica, memorySaving: false, reason: "auto: one GPU, one replica")
        }
        if inputs.queueDepth >= inputs.gpus {
            return Decision(
                placement: .replica, memorySaving: false,
                reason: "auto: \(inputs.queueDepth) job(s) waiting for \(inputs.gpus) GPUs, so one replica per GPU")
        }
        // Fewer jobs than GPUs: one group per waiting job (at least one), each as large as the heads allow.
        let groups = max(1, inputs.queueDepth)
        let largest = inputs.gpus / groups
        guard largest >= 2 else {
            return Decision(
                placement: .replica, memorySaving: false,
                reason: "auto: \(inputs.queueDepth) job(s) waiting for \(inputs.gpus) GPUs: groups of 2 would leave "
                    + "jobs waiting, so one replica per GPU")
        }
        guard let k = model.validGroupSizes(upTo: largest).last else {
            return Decision(
                placement: .replica, memorySaving: false,
                reason:
                    "auto: no group of 2…\(largest) GPUs divides the model's \(model.attentionHeads) heads, so replicas"
            )
        }
        return Decision(
            placement: .parallel(k), memorySaving: false,
            reason: "auto: \(inputs.queueDepth) job(s) waiting for \(inputs.gpus) GPUs, so groups of \(k) run each job "
                + "faster (\(k) divides the model's \(model.attentionHeads) heads)")
    }
}

extension PlacementPlanner {
    /// The plan for `--placement` over `--devices`, with the GPUs' memory read from `nvidia-smi` (capped by
    /// `--memory-budget`) when the devices are GPUs.
    public static func resolve(
        placement text: String, devices: String, model: ModelInfo, modelPath: String?, memoryBudgetGiB: Double?,
        queueDepth: Int, gpuMemoryBytes: () -> Int64? = GPUMemory.smallestTotalBytes
    ) throws -> PlacementPlan {
        let placement = try Placement.parse(text)
        return try PlacementInputs(
            devices: devices, model: model, modelPath: modelPath, memoryBudgetGiB: memoryBudgetGiB,
            gpuMemoryBytes: gpuMemoryBytes
        ).plan(placement, queueDepth: queueDepth)
    }

    /// The GPUs' memory, capped by `--memory-budget`; nil on CPU or when unknown.
    static func memory(of devices: [String], budgetGiB: Double?, gpuMemoryBytes: () -> Int64?) -> Int64? {
        guard devices.contains(where: { $0.hasPrefix("cuda") }) else { return nil }
        var memory = gpuMemoryBytes()
        if let budgetGiB {
            let cap = Int64(exactly: (budgetGiB * Double(ModelFootprint.gib)).rounded(.down)) ?? Int64.max
            memory = min(memory ?? cap, cap)
        }
        return memory
    }
}
