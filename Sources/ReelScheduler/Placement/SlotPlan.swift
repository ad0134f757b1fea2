import Foundation
import ReelCore

/// Turns `--devices` into one replica slot per device (see `PlacementPlanner` for the other layouts): `auto`, `cpu`, `cpu,cpu`, `cuda:0,cuda:1`, …
public enum SlotPlan {
    public static func parse(_ text: String, cudaDeviceCount: () -> Int = SlotPlan.countCUDADevices) throws -> [Slot] {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        var devices: [String]
        if trimmed == "auto" {
            let count = cudaDeviceCount()
            devices = count > 0 ? (0..<count).map { "cuda:\($0)" } : ["cpu"]
        } else {
            devices = trimmed.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        guard !devices.isEmpty else {
            throw SlotPlanError("--devices is empty; use auto, cpu, cpu,cpu or cuda:0,cuda:1")
        }
        // A device named more than once gets that many workers (several replicas sharing one GPU, or CPU slots);
        // their slots are told apart as cpu-1, cpu-2 or cuda:0-1, cuda:0-2.
        var normalized: [String] = []
        for device in devices {
            if device == "cpu" {
                normalized.append(device)
                continue
            }
            let name = device == "cuda" ? "cuda:0" : device
            guard name.hasPrefix("cuda:"), let index = Int(name.dropFirst(5)), index >= 0 else {
                throw SlotPlanError("'\(device)' is not a device; use cpu or cuda:N")
            }
            normalized.append(name)
        }
        return normalized.enumerated().map { index, device in
            Slot(id: slotID(device, among: normalized, index: index), device: device)
        }
    }

    /// A slot's name: its device, numbered when the device is named more than once.
    static func slotID(_ device: String, among devices: [String], index: Int) -> String {
        guard devices.filter({ $0 == device }).count > 1 else { return device }
        return "\(device)-\(devices[...index].filter { $0 == device }.count)"
    }

    /// The NVIDIA GPUs this host exposes (`/dev/nvidiaN`), honouring CUDA_VISIBLE_DEVICES when it is set.
    public static func countCUDADevices() -> Int {
        if let visible = ProcessInfo.processInfo.environment["CUDA_VISIBLE_DEVICES"] {
            return visible.split(separator: ",").filter { !$0.isEmpty && $0 != "-1" }.count
        }
        var count = 0
        while FileManager.default.fileExists(atPath: "/dev/nvidia\(count)") { count += 1 }
        return count
    }
}

public struct SlotPlanError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}
