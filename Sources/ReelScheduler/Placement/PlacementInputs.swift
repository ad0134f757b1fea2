import Foundation
import ReelCore

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
