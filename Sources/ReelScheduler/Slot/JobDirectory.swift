import Foundation
import ReelCore
import ReelStore
import ReelWorkerProtocol

/// A job's output directory, as the slot prepares it for an attempt.
enum JobDirectory {
    /// The name of the engine's checkpoint file in a job's directory.
    static let checkpointFile = "checkpoint.pt"

    /// What an attempt of a job writes in its directory (besides the checkpoint): the files and their temporary
    /// names (`.video.mp4.tmp`, …), and the thumbnail the server makes later.
    static let outputs: Set<String> = ["video.mp4", "job.json", "frames", "thumbnail.jpg"]

    /// Removes what an earlier attempt left in a job's directory, but `kept`. Only Reel's own files go: with
    /// `reel generate --out DIR` the directory is the user's.
    static func clear(_ directory: String, keeping kept: String?) {
        let fileManager = FileManager.default
        guard let entries = try? fileManager.contentsOfDirectory(atPath: directory) else { return }
        for entry in entries where entry != kept && isOutput(entry) {
            try? fileManager.removeItem(atPath: directory + "/" + entry)
        }
    }

    static func isOutput(_ entry: String) -> Bool {
        if outputs.contains(entry) { return true }
        // A temporary name of an output or of the checkpoint: `.NAME.tmp`.
        guard entry.hasPrefix("."), entry.hasSuffix(".tmp") else { return false }
        let name = String(entry.dropFirst().dropLast(4))
        return outputs.contains(name) || name == checkpointFile
    }
}

/// Free space on the file system that holds the outputs.
public enum DiskSpace {
    /// The bytes available to this process on the file system holding `path` (or its nearest existing parent).
    static func available(at path: String) -> Int64? {
        var url = URL(fileURLWithPath: path)
        let fileManager = FileManager.default
        while !fileManager.fileExists(atPath: url.path) && url.path != "/" { url.deleteLastPathComponent() }
        var info = statvfs()
        guard statvfs(url.path, &info) == 0 else { return nil }
        let (bytes, overflow) = Int64(clamping: info.f_bavail).multipliedReportingOverflow(
            by: Int64(clamping: info.f_frsize))
        return overflow ? Int64.max : bytes
    }

    /// Why a slot should not take a job now: the outputs' file system has less than `minimum` bytes free. Nil when
    /// there is room, or when the free space cannot be read (a claim then goes ahead and a full disk fails it).
    static func shortage(at path: String, minimum: Int64) -> String? {
        guard let free = available(at: path), free < minimum else { return nil }
        return "only \(format(free)) free on the file system of \(path), less than --min-free-disk \(format(minimum)); "
            + "waiting for space"
    }

    /// What one job at `width`×`height`×`frames` may write: every frame as an uncompressed PNG (their bound), the
    /// video and job.json at most as much again, and 64 MB for the checkpoint and the metadata. The default of
    /// `--min-free-disk`, for the model's default size.
    public static func oneJobsOutputs(width: Int, height: Int, frames: Int) -> Int64 {
        let (pixels, overflow) = Int64(width).multipliedReportingOverflow(by: Int64(height))
        guard !overflow else { return Int64.max }
        let (frameBytes, overflow2) = pixels.multipliedReportingOverflow(by: Int64(frames) * 3)
        guard !overflow2 else { return Int64.max }
        let (doubled, overflow3) = frameBytes.multipliedReportingOverflow(by: 2)
        guard !overflow3 else { return Int64.max }
        return doubled.addingReportingOverflow(64_000_000).overflow ? Int64.max : doubled + 64_000_000
    }

    /// Reads `0`, `750000000`, `500M`, `2G`, `1.5T` (decimal units; `MiB`, `GiB` for binary ones) as bytes.
    public static func parse(_ text: String) -> Int64? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let units: [(String, Double)] = [
            ("TiB", 1_099_511_627_776), ("GiB", 1_073_741_824), ("MiB", 1_048_576), ("KiB", 1024),
            ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3),
            ("B", 1),
        ]
        var number = Substring(trimmed)
        var scale = 1.0
        for (suffix, factor) in units where trimmed.uppercased().hasSuffix(suffix.uppercased()) {
            number = trimmed.dropLast(suffix.count)
            scale = factor
            break
        }
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
            let value = Double(number), value.isFinite
        else { return nil }
        let bytes = value * scale
        guard bytes >= 0, bytes < 9e18 else { return nil }
        return Int64(bytes.rounded())
    }

    static func format(_ bytes: Int64) -> String {
        let units = ["B", "KB", "MB", "GB", "TB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1000 && unit < units.count - 1 {
            value /= 1000
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
    }
}

extension WorkerRequest.Generate {
    /// The request that runs one attempt of `job` in `outDir`.
    init(
        job: Job, attempt: Int, outDir: String, checkpointEvery: Int?, debug: [String: JSONValue]?, images: ImageStore,
        loras: LoRALibrary
    ) {
        let spec = job.spec
        self.init(
            job: job.id, prompt: spec.prompt, negativePrompt: spec.negativePrompt, width: spec.width,
            height: spec.height, frames: spec.frames, steps: spec.steps, guidance: spec.guidance,
            guidance2: spec.guidance2, seed: spec.seed, pngFrames: spec.pngFrames, outDir: outDir, fps: spec.fps,
            memorySaving: job.memorySaving ? true : nil, interpolate: spec.interpolate,
            checkpointEvery: checkpointEvery,
            metadata: ["job_id": .string(job.id), "attempt": .number(Double(attempt))])
        if let style = spec.style { metadata?["style"] = .string(style) }
        if let userPrompt = spec.userPrompt { metadata?["user_prompt"] = .string(userPrompt) }
        if let seconds = spec.requestedSeconds { metadata?["requested_seconds"] = .number(seconds) }
        // The worker reads each image from this node's image files (which the driver made sure hold it, copied from
        // the job store when another node took the upload) and checks its bytes against the job's hash.
        image = spec.image.map { WorkerRequest.ImageFile(path: images.url(for: $0).path, sha256: $0.sha256) }
        lastImage = spec.lastImage.map { WorkerRequest.ImageFile(path: images.url(for: $0).path, sha256: $0.sha256) }
        fit = spec.fit?.rawValue
        // Each LoRA by this node's library file, checked by the worker against the hash the job was submitted with.
        if let resolved = spec.loras, !resolved.isEmpty {
            self.loras = resolved.map {
                WorkerRequest.LoRA(
                    name: $0.name, path: loras.url(named: $0.name).path, sha256: $0.sha256, scale: $0.scale,
                    expert: $0.expert.rawValue)
            }
        }
        sampler = spec.sampler.map {
            WorkerRequest.Sampler(
                kind: $0.kind, shift: $0.shift, denoisingSteps: $0.denoisingSteps, switchStep: $0.switchStep)
        }
        recipe = spec.recipe
        self.debug = debug
    }
}
