import ArgumentParser
import Foundation
import ReelCore
import ReelScheduler
import ReelStore
import ReelWorker
import ReelWorkerProtocol
import Synchronization

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

    @OptionGroup var supervision: LocalRunOptions

    @Option(
        help: ArgumentHelp(
            "A picture the video starts from (PNG, JPEG or WebP): image-to-video on TI2V-5B and I2V-A14B.",
            valueName: "path"))
    var image: String?

    @Option(help: ArgumentHelp("A picture the video ends on (I2V-A14B only; needs --image).", valueName: "path"))
    var lastImage: String?

    @Option(help: "How the images fit the size: cover (scale and centre-crop; the default), contain or stretch.")
    var fit: String?

    @Option(
        help: ArgumentHelp(
            "WIDTHxHEIGHT, multiples of the model's stride (32 for TI2V-5B, 16 for A14B), a preset, or auto (the "
                + "preset nearest the image's aspect ratio)."))
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

    @OptionGroup var jobLoRAs: JobLoRAOptions

    @OptionGroup var loraLibrary: LoRALibraryOptions

    @Option(help: "Generation frame rate (default: the model's, 24 for TI2V-5B, 16 for A14B).")
    var fps: Int?

    @Option(help: "Multiply the frame rate by 2 or 4 with motion-compensated interpolation.")
    var interpolate: Int?

    @Option(help: "Directory for the video, frames and job.json.")
    var out: String

    func run() async throws {
        let model = try engine.resolveModel()
        var request = GenerationRequest(
            prompt: prompt, negativePrompt: negativePrompt, size: size, frames: frames, seconds: seconds, steps: steps,
            guidance: guidance, seed: seed, pngFrames: pngFrames, style: style, fps: fps, interpolate: interpolate)
        let library = try styleFile.library(dataDirectory: engine.resolvedDataDir)
        let loraCatalog = try loraLibrary.catalog(dataDirectory: engine.resolvedDataDir)
        let spec: GenerationSpec
        do {
            // The images go into the data directory's image store, where the worker reads them.
            let images = ImageStore(dataDirectory: engine.resolvedDataDir)
            request.image = try image.map { path throws(ReelError) in try images.put(file: path, field: "image") }
            request.lastImage = try lastImage.map { path throws(ReelError) in
                try images.put(file: path, field: "last_image")
            }
            request.fit = try fit.map { text throws(ReelError) in try ImageFit.parse(text) }
            try jobLoRAs.apply(to: &request)
            spec = try Validation.resolve(request, model: model, styles: library, loras: loraCatalog)
        } catch {
            throw ValidationError(error.description)
        }
        if let style = spec.style { printError("style \(style): \(spec.prompt)") }
        if let seconds, abs(spec.seconds - seconds) > 1e-9 {
            printError(
                "note: \(seconds) s is \(spec.frames) frames at \(spec.fps) fps (\(String(format: "%.3f", spec.seconds)) s)"
            )
        }
        let outDir = absolutePath(out)
        // A one-job local batch: the job's directory is `--out`, so its id is that folder's name.
        let folder = URL(fileURLWithPath: outDir)
        let job = NewJob(id: folder.lastPathComponent, spec: spec)
        let plan = PlacementPlan.replica(on: engine.resolvedDevice)
        var queue = LocalQueue(
            engine: engine, options: supervision, plan: plan, outputRoot: folder.deletingLastPathComponent().path)
        // A command that cannot start its worker says why at once rather than retrying.
        queue.unhealthyAfter = 1
        queue.loras = loraLibrary
        printError("starting the \(engine.modelArgument) worker on \(engine.resolvedDevice) …")
        let display = ProgressDisplay(label: "generating")
        let announced = Mutex(false)
        let finished: [String: Job]
        do {
            finished = try await queue.run([job]) { event, workers in
                if let progress = event?.progress { display.update(progress) }
                if let worker = workers.first, worker.state == .ready || worker.state == .busy,
                    announced.withLock({ seen in
                        defer { seen = true }; return !seen
                    })
                {
                    display.finish()
                    printError("worker ready on \(worker.device)")
                }
                if let event, event.kind == .requeued {
                    display.finish()
                    printError(event.message ?? "the attempt failed; retrying")
                }
            }
        } catch let error as ValidationError {
            display.finish()
            printError("error: \(error.message)")
            throw ExitCode(1)
        }
        display.finish()
        guard let done = finished[job.id], done.state == .succeeded, let outputs = done.outputs else {
            let ended = finished[job.id]
            printError(
                "error: the video was not made (\(ended?.state.rawValue ?? "unknown")): \(ended?.errorMessage ?? "")")
            throw ExitCode(1)
        }
        print("video:    \(outputs.video)")
        if let frames = outputs.framesDirectory { print("frames:   \(frames)") }
        print("metadata: \(outputs.metadata)")
        let seconds = outputs.secondsPerStage
        print(
            String(
                format: "seconds:  text encoding %.2f, denoising %.2f, VAE decode %.2f, encoding %.2f, total %.2f",
                seconds["text_encoding"] ?? 0, seconds["denoising"] ?? 0, seconds["vae_decode"] ?? 0,
                seconds["encoding"] ?? 0, seconds["total"] ?? 0))
    }
}
