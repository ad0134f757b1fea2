import Foundation
import ReelCore

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
        devices.enumerated().map { index, device in
            Slot(id: slotID(device, among: devices, index: index), device: device)
        }
    }

    /// `cuda:N` for a GPU; `cpu`, or `cpu-N` when several CPU slots share the host (as `SlotPlan` names them).
    static func slotID(_ device: String, among devices: [String], index: Int) -> String {
        SlotPlan.slotID(device, among: devices, index: index)
    }
}
