import ArgumentParser
import Foundation
import ReelCore
import ReelWorker
import ReelWorkerProtocol

/// `reel generate`: one prompt, one worker, one video.
struct GenerateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate one video from a prompt with a local worker."
    )

    @Option(help: "What the video shows (any language).")
    var prompt: String

    @Option(help: "What the video should avoid.")
    var negativePrompt: String?

    @OptionGroup var engine: EngineOptions

    @Option(help: "WIDTHxHEIGHT, multiples of the model's stride (32 for TI2V-5B, 16 for A14B).")
    var size: String?

    @Option(help: "Number of frames, 4n+1.")
    var frames: Int?

    @Option(help: "Duration in seconds; converted to the nearest 4n+1 frames at the model's frame rate.")
    var seconds: Double?

    @Option(help: "Denoising steps.")
    var steps: Int?

    @Option(help: "Classifier-free guidance scale.")
    var guidance: Double?

    @Option(help: "Random seed; the same seed on the same device gives the same video.")
    var seed: UInt64?

    @Flag(help: "Also write every frame as PNG.")
    var pngFrames = false

    @Option(help: "A style from the library (see `reel styles`).")
    var style: String?

    @OptionGroup var styleFile: StyleFileOption

    @Option(help: "Generation frame rate (default: the model's, 24 for TI2V-5B, 16 for A14B).")
    var fps: Int?

    @Option(help: "Multiply the frame rate by 2 or 4 with motion-compensated interpolation.")
    var interpolate: Int?

    @Option(help: "Directory for the video, frames and job.json.")
    var out: String

    func run() async throws {
        let model = try engine.resolveModel()
        let request = GenerationRequest(
            prompt: prompt, negativePrompt: negativePrompt, size: size, frames: frames, seconds: seconds, steps: steps,
            guidance: guidance, seed: seed, pngFrames: pngFrames, style: style, fps: fps, interpolate: interpolate)
        let library = try styleFile.library(dataDirectory: engine.resolvedDataDir)
        let spec: GenerationSpec
        do {
            spec = try Validation.resolve(request, model: model, styles: library)
        } catch {
            throw ValidationError(error.description)
        }
        if let style = spec.style { printError("style \(style): \(spec.prompt)") }
        if let seconds, abs(spec.seconds - seconds) > 1e-9 {
            printError(
                "note: \(seconds) s is \(spec.frames) frames at \(spec.fps) fps (\(String(format: "%.3f", spec.seconds)) s)")
        }
        let outDir = absolutePath(out)
        let job = WorkerRequest.Generate(spec: spec, job: "generate-\(UUID().uuidString.prefix(8).lowercased())", outDir: outDir)

        let runner = LocalRunner(engine: engine)
        let result = try await runner.run { connection, events in
            let display = ProgressDisplay(label: "generating")
            defer { display.finish() }
            return try await connection.generate(job, events: &events) { display.update($0) }
        }
        print("video:    \(result.outputs.video)")
        if let frames = result.outputs.framesDir { print("frames:   \(frames)") }
        print("metadata: \(result.outputs.metadata)")
        let seconds = result.seconds
        print(
            String(
                format: "seconds:  text encoding %.2f, denoising %.2f, VAE decode %.2f, encoding %.2f, total %.2f",
                seconds.textEncoding, seconds.denoising, seconds.vaeDecode, seconds.encoding, seconds.total))
    }
}

extension WorkerRequest.Generate {
    init(spec: GenerationSpec, job: String, outDir: String, metadata: [String: JSONValue]? = nil) {
        self.init(
            job: job, prompt: spec.prompt, negativePrompt: spec.negativePrompt, width: spec.width, height: spec.height,
            frames: spec.frames, steps: spec.steps, guidance: spec.guidance, guidance2: spec.guidance2,
            seed: spec.seed, pngFrames: spec.pngFrames, outDir: outDir, fps: spec.fps, interpolate: spec.interpolate,
            metadata: Self.styleMetadata(spec).merging(metadata ?? [:]) { _, new in new })
    }

    /// What job.json records about the style, so a video can be traced back to the user's own words.
    static func styleMetadata(_ spec: GenerationSpec) -> [String: JSONValue] {
        var fields: [String: JSONValue] = [:]
        if let style = spec.style { fields["style"] = .string(style) }
        if let userPrompt = spec.userPrompt { fields["user_prompt"] = .string(userPrompt) }
        if let seconds = spec.requestedSeconds { fields["requested_seconds"] = .number(seconds) }
        return fields
    }
}
