import Foundation
import ReelCore

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
