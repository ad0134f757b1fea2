import Foundation
import ReelCore

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
                throw PlacementError("--placement: '\(text)' is not a placement; use replica, split, parallel:K or auto")
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
    init(_ description: String) { self.description = description }
}

/// What a model needs in device memory, and how many attention heads a parallel group can share out.
public struct ModelFootprint: Sendable, Equatable {
    /// The transformer's attention heads (`num_attention_heads`); a parallel group's size must divide it.
    public var attentionHeads: Int
    /// The text encoder's weights.
    public var textEncoderBytes: Int64
    /// The transformer(s) and the VAE, with room for a job's activations.
    public var denoiserBytes: Int64

    public init(attentionHeads: Int, textEncoderBytes: Int64, denoiserBytes: Int64) {
        self.attentionHeads = attentionHeads
        self.textEncoderBytes = textEncoderBytes
        self.denoiserBytes = denoiserBytes
    }

    public var totalBytes: Int64 { textEncoderBytes + denoiserBytes }

    static let gib: Int64 = 1 << 30
    /// Room for a job's activations at the models' default sizes, beyond the weights.
    static let workingBytes: Int64 = 12 * gib

    /// The footprint of a model as `reel` names it: built-in sizes for the built-in models (bf16 weights of
    /// UMT5-XXL, the 5B or two 14B transformers and the VAE), the weight files and transformer config of a
    /// diffusers directory otherwise.
    public static func of(_ model: ModelInfo, path: String? = nil) -> ModelFootprint {
        let umt5 = 11_400_000_000 as Int64
        if model.isTiny {
            return ModelFootprint(attentionHeads: 2, textEncoderBytes: 1 << 20, denoiserBytes: 16 << 20)
        }
        if let path, FileManager.default.fileExists(atPath: path + "/model_index.json") {
            let heads = Self.readHeads(path + "/transformer/config.json")
                ?? Self.readHeads(path + "/transformer_2/config.json")
            let text = Self.weightBytes(path + "/text_encoder")
            let denoiser = Self.weightBytes(path + "/transformer") + Self.weightBytes(path + "/transformer_2")
                + Self.weightBytes(path + "/vae")
            let fallback = Self.of(ModelInfo(
                name: "random:" + model.architecture.rawValue, architecture: model.architecture, randomWeights: true,
                defaults: model.defaults))
            return ModelFootprint(
                attentionHeads: heads ?? fallback.attentionHeads,
                textEncoderBytes: text > 0 ? text : fallback.textEncoderBytes,
                denoiserBytes: denoiser > 0 ? denoiser + workingBytes : fallback.denoiserBytes)
        }
        switch model.architecture {
        case .ti2v5B:
            return ModelFootprint(
                attentionHeads: 24, textEncoderBytes: umt5, denoiserBytes: 10_000_000_000 + 1_400_000_000 + workingBytes)
        case .t2vA14B:
            return ModelFootprint(
                attentionHeads: 40, textEncoderBytes: umt5, denoiserBytes: 57_000_000_000 + 500_000_000 + workingBytes)
        }
    }

    static func readHeads(_ path: String) -> Int? {
        guard let data = FileManager.default.contents(atPath: path),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return nil }
        return (object["num_attention_heads"] as? NSNumber)?.intValue
    }

    /// The size of the weight files (`*.safetensors`, `*.bin`) in a component's folder.
    static func weightBytes(_ directory: String) -> Int64 {
        let fileManager = FileManager.default
        guard let names = try? fileManager.contentsOfDirectory(atPath: directory) else { return 0 }
        var total: Int64 = 0
        for name in names where name.hasSuffix(".safetensors") || name.hasSuffix(".bin") {
            let attributes = try? fileManager.attributesOfItem(atPath: directory + "/" + name)
            total += (attributes?[.size] as? NSNumber)?.int64Value ?? 0
        }
        return total
    }

    /// The group sizes that divide the heads, up to `limit`.
    public func validGroupSizes(upTo limit: Int) -> [Int] {
        guard limit >= 2 else { return [] }
        return (2...limit).filter { attentionHeads % $0 == 0 }
    }
}

/// The slots a node runs and why: printed at start and shown in `/v1/workers`.
public struct PlacementPlan: Sendable, Equatable {
    /// What `--placement` said.
    public var requested: Placement
    /// What was run: equal to `requested` unless that was `auto`.
    public var chosen: Placement
    public var slots: [Slot]
    /// Why `auto` chose this, and anything the user should know (devices left over, no sharding on CPU).
    public var notes: [String]
    /// Load every worker with the memory-saving settings (auto, when the model fits no single device).
    public var memorySaving: Bool

    public init(
        requested: Placement, chosen: Placement, slots: [Slot], notes: [String] = [], memorySaving: Bool = false
    ) {
        self.requested = requested
        self.chosen = chosen
        self.slots = slots
        self.notes = notes
        self.memorySaving = memorySaving
    }

    /// One replica slot on `device`.
    public static func replica(on device: String) -> PlacementPlan {
        PlacementPlan(requested: .replica, chosen: .replica, slots: [Slot(id: device, device: device)])
    }

    /// Lines for the start-up printout.
    public var lines: [String] {
        var lines = ["placement: \(chosen)" + (requested == .auto ? " (auto)" : "")]
        for slot in slots { lines.append("  \(slot.id): \(slot.summary)") }
        for note in notes { lines.append("  note: \(note)") }
        return lines
    }
}

/// Turns a placement and a node's devices into slots. Pure apart from what it is given.
public enum PlacementPlanner {
    /// - Parameters:
    ///   - devices: the node's devices in order, from `--devices` (`cpu`, `cpu`, or `cuda:0`, `cuda:1`, …).
    ///   - deviceMemoryBytes: each GPU's memory (or the memory budget, when smaller); nil when unknown or on CPU.
    ///   - queueDepth: jobs waiting when the node starts, for `auto`.
    public static func plan(
        _ placement: Placement, devices: [String], model: ModelFootprint, deviceMemoryBytes: Int64?,
        queueDepth: Int
    ) throws(PlacementError) -> PlacementPlan {
        guard !devices.isEmpty else { throw PlacementError("--devices names no device") }
        let onCPU = devices.allSatisfy { $0 == "cpu" }
        var chosen = placement
        var notes: [String] = []
        var memorySaving = false
        if placement == .auto {
            let gpus = devices.filter { $0 != "cpu" }
            // `--devices cuda:0,cuda:0` asks for several workers on one GPU, which is a layout of replicas already:
            // auto only decides whether they need the memory-saving settings.
            let repeated = Set(gpus).count < gpus.count
            let decision = AutoPlacement.choose(
                AutoPlacement.Inputs(
                    gpus: onCPU ? 0 : repeated ? 1 : devices.count, deviceMemoryBytes: deviceMemoryBytes, model: model,
                    queueDepth: queueDepth))
            chosen = repeated ? .replica : decision.placement
            notes.append(
                repeated
                    ? "auto: a GPU is named more than once in --devices, so one replica per name"
                        + (decision.memorySaving ? ", with the memory-saving settings" : "")
                    : decision.reason)
            memorySaving = decision.memorySaving
        }
        var slots: [Slot] = []
        switch chosen {
        case .replica, .auto:
            slots = replicas(devices)
        case .split:
            guard devices.count >= 2 else {
                throw PlacementError(
                    "--placement split needs two devices per slot (text encoder, then transformer and VAE); "
                        + "--devices gives only \(devices[0]); use cuda:0,cuda:1 or cpu,cpu")
            }
            for pair in stride(from: 0, to: devices.count - 1, by: 2) {
                let index = pair / 2 + 1
                slots.append(Slot(id: "split-\(index)", device: devices[pair + 1], textDevice: devices[pair]))
            }
            if devices.count % 2 == 1, let last = devices.last {
                slots.append(Slot(id: slotID(last, among: devices, index: devices.count - 1), device: last))
                notes.append("\(last) is left over from the pairs and runs the whole pipeline as a replica")
            }
        case .parallel(let k):
            guard model.attentionHeads % k == 0 else {
                let valid = model.validGroupSizes(upTo: max(k, devices.count, 8))
                throw PlacementError(
                    "--placement parallel:\(k): \(k) does not divide the model's \(model.attentionHeads) attention "
                        + "heads; valid group sizes are "
                        + (valid.isEmpty ? "none" : valid.map(String.init).joined(separator: ", ")))
            }
            guard devices.count >= k else {
                throw PlacementError(
                    "--placement parallel:\(k) needs \(k) devices per group; --devices gives \(devices.count) ("
                        + devices.joined(separator: ",") + ")")
            }
            let groups = devices.count / k
            for group in 0..<groups {
                let members = Array(devices[(group * k)..<(group * k + k)])
                let gpus = members.filter { $0 != "cpu" }
                guard Set(gpus).count == gpus.count else {
                    throw PlacementError(
                        "--placement parallel:\(k): group \(group + 1) would put two ranks on one GPU ("
                            + members.joined(separator: ",") + "), which NCCL refuses; give each rank its own GPU")
                }
                slots.append(Slot(id: "group-\(group + 1)", device: members[0], rankDevices: members))
            }
            let rest = devices.count - groups * k
            if rest > 0 {
                for index in (groups * k)..<devices.count {
                    slots.append(Slot(id: slotID(devices[index], among: devices, index: index), device: devices[index]))
                }
                notes.append(
                    "\(rest) device(s) left over from groups of \(k) run the whole pipeline as replicas")
            }
            if onCPU {
                notes.append(
                    "CPU groups join torch.distributed (gloo) and check each other on every job, but each rank computes "
                        + "the whole job: diffusers' context parallelism needs GPUs, so nothing is sharded or faster")
            }
        }
        return PlacementPlan(
            requested: placement, chosen: chosen, slots: slots, notes: notes, memorySaving: memorySaving)
    }

    static func replicas(_ devices: [String]) -> [Slot] {
        devices.enumerated().map { index, device in Slot(id: slotID(device, among: devices, index: index), device: device) }
    }

    /// `cuda:N` for a GPU; `cpu`, or `cpu-N` when several CPU slots share the host (as `SlotPlan` names them).
    static func slotID(_ device: String, among devices: [String], index: Int) -> String {
        SlotPlan.slotID(device, among: devices, index: index)
    }
}

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
                        + "transformer and VAE (\(gib(model.denoiserBytes))) fit one, so the text encoder goes on another")
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
                reason: "auto: no group of 2…\(largest) GPUs divides the model's \(model.attentionHeads) heads, so replicas")
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
            let cap = Int64(budgetGiB * Double(ModelFootprint.gib))
            memory = min(memory ?? cap, cap)
        }
        return memory
    }
}

/// What a plan is made from, read once: the devices of `--devices`, the model's footprint and the GPUs' memory.
/// `reel serve --placement auto` plans from it again as the queue changes (`Relayout`), without asking the GPUs or
/// reading the model's files again.
public struct PlacementInputs: Sendable {
    public let devices: [String]
    public let footprint: ModelFootprint
    /// Each GPU's memory, capped by `--memory-budget`; nil on CPU or when unknown.
    public let deviceMemoryBytes: Int64?

    public init(
        devices: String, model: ModelInfo, modelPath: String?, memoryBudgetGiB: Double?,
        gpuMemoryBytes: () -> Int64? = GPUMemory.smallestTotalBytes
    ) throws {
        self.devices = try SlotPlan.parse(devices).map(\.device)
        footprint = ModelFootprint.of(model, path: modelPath)
        deviceMemoryBytes = PlacementPlanner.memory(
            of: self.devices, budgetGiB: memoryBudgetGiB, gpuMemoryBytes: gpuMemoryBytes)
    }

    public func plan(_ placement: Placement, queueDepth: Int) throws(PlacementError) -> PlacementPlan {
        try PlacementPlanner.plan(
            placement, devices: devices, model: footprint, deviceMemoryBytes: deviceMemoryBytes, queueDepth: queueDepth)
    }
}

/// The memory of this host's GPUs, as `nvidia-smi` reports it.
public enum GPUMemory {
    /// The smallest GPU's total memory, or nil when `nvidia-smi` is missing or fails.
    public static func smallestTotalBytes() -> Int64? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            return nil
        }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        let mebibytes = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline)
            .compactMap { Int64($0.trimmingCharacters(in: .whitespaces)) }
        return mebibytes.min().map { $0 << 20 }
    }
}
