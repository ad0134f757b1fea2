import ArgumentParser
import Foundation
import Logging
import ReelCore
import ReelWorker

/// The options that choose a model, a device and where Reel keeps its data.
struct EngineOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "tiny, tiny:t2v-a14b, random:ti2v-5b, random:t2v-a14b, a diffusers Wan2.2 directory, or comfyui:DIR (a "
                + "ComfyUI models/ folder; see --unet)."))
    var model: String = "tiny"

    @OptionGroup var comfy: ComfyModelOptions

    @Option(help: "cpu, cuda or cuda:N; auto picks cuda:0 when a GPU is present.")
    var device: String = "auto"

    @Option(help: "Where Reel keeps models and state (default $REEL_DATA_DIR or ~/.local/share/reel).")
    var dataDir: String?

    @Flag(help: "Load with VAE tiling and model offload, for small GPUs.")
    var memorySaving = false

    @Option(
        help: ArgumentHelp(
            "Cap each worker's GPU memory at this many GiB; the engine places components to fit.",
            valueName: "GiB"))
    var memoryBudget: Double?

    @Option(
        help: ArgumentHelp(
            "An approximate speed-up that changes the video, off by default and recorded in job.json: "
                + "first-block-cache[:THRESHOLD].", valueName: "name"))
    var approximate: String?

    @Flag(name: .shortAndLong, help: "Show the engine's log.")
    var verbose = false

    @Option(help: "Interpolate frames with this RIFE checkpoint (Practical-RIFE flownet.pkl) instead of minterpolate.")
    var rife: String?

    func validate() throws {
        if let memoryBudget, !(memoryBudget > 0 && memoryBudget <= 1_000_000) {
            throw ValidationError("--memory-budget must be a number of GiB between 0 and 1000000, not \(memoryBudget)")
        }
        if let approximate {
            do { _ = try ApproximateSpeedUp.validate(approximate) } catch { throw ValidationError(error.description) }
        }
    }

    /// The environment that tells workers about options they read from it.
    func workerEnvironment() throws -> [String: String] {
        guard let rife else { return [:] }
        let path = absolutePath(rife)
        guard FileManager.default.fileExists(atPath: path) else {
            throw ValidationError("--rife: no file at \(path); point it at a RIFE flownet.pkl")
        }
        return ["REEL_RIFE_CHECKPOINT": path]
    }

    var resolvedDevice: String {
        guard device == "auto" else { return device }
        return FileManager.default.fileExists(atPath: "/dev/nvidia0") ? "cuda:0" : "cpu"
    }

    var resolvedDataDir: String {
        if let dataDir { return absolutePath(dataDir) }
        return Self.defaultDataDirectory
    }

    /// $REEL_DATA_DIR, else ~/.local/share/reel.
    static var defaultDataDirectory: String {
        if let fromEnvironment = ProcessInfo.processInfo.environment["REEL_DATA_DIR"], !fromEnvironment.isEmpty {
            return absolutePath(fromEnvironment)
        }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".local/share/reel").path
    }

    func launch() throws -> WorkerLaunch {
        var launch = WorkerLaunch(
            engine: EngineLocation.locate(), device: resolvedDevice, model: modelArgument,
            dataDirectory: resolvedDataDir, memorySaving: memorySaving, memoryBudgetGiB: memoryBudget,
            environment: try workerEnvironment())
        launch.approximate = approximate
        return launch
    }

    /// A model directory is passed to the worker as an absolute path; a ComfyUI folder with its chosen files.
    var modelArgument: String {
        if model.hasPrefix(ComfyModelSpec.prefix) { return comfy.modelName(folder: model) }
        return ModelCatalog.builtInNames.contains(model) ? model : absolutePath(model)
    }

    func resolveModel() throws -> ModelInfo {
        do {
            return try ModelCatalog.resolve(modelArgument)
        } catch {
            throw ValidationError(error.description)
        }
    }

    func logger() -> Logger {
        var logger = Logger(label: "reel")
        logger.logLevel = verbose ? .debug : .warning
        return logger
    }
}

func absolutePath(_ path: String) -> String {
    let expanded = (path as NSString).expandingTildeInPath
    if expanded.hasPrefix("/") { return URL(fileURLWithPath: expanded).standardizedFileURL.path }
    return URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(expanded)
        .standardizedFileURL.path
}

/// Writes to stderr without buffering surprises.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Prints a line to stdout and flushes it at once, for output another program reads as it comes.
func printFlushed(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

/// The files of a `comfyui:DIR` model, by name in their ComfyUI folder (or absolute paths).
struct ComfyModelOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp("With comfyui:DIR, the TI2V-5B transformer file in diffusion_models/.", valueName: "file"))
    var unet: String?
    @Option(help: ArgumentHelp("With comfyui:DIR, an A14B model's high-noise expert file.", valueName: "file"))
    var unetHigh: String?
    @Option(help: ArgumentHelp("With comfyui:DIR, an A14B model's low-noise expert file.", valueName: "file"))
    var unetLow: String?
    @Option(help: ArgumentHelp("With comfyui:DIR, the UMT5 file in text_encoders/.", valueName: "file"))
    var textEncoder: String?
    @Option(help: ArgumentHelp("With comfyui:DIR, the VAE file in vae/.", valueName: "file"))
    var vae: String?

    var isEmpty: Bool { [unet, unetHigh, unetLow, textEncoder, vae].allSatisfy { $0 == nil } }

    /// The model's name: the folder (absolute) with these files chosen.
    func modelName(folder name: String) -> String {
        let given = (try? ComfyModelSpec.parse(name)) ?? nil
        var spec = given ?? ComfyModelSpec(folder: String(name.dropFirst(ComfyModelSpec.prefix.count)))
        spec.folder = absolutePath(spec.folder)
        spec.unet = unet.map(Self.path) ?? spec.unet
        spec.unetHigh = unetHigh.map(Self.path) ?? spec.unetHigh
        spec.unetLow = unetLow.map(Self.path) ?? spec.unetLow
        spec.textEncoder = textEncoder.map(Self.path) ?? spec.textEncoder
        spec.vae = vae.map(Self.path) ?? spec.vae
        return spec.name
    }

    /// A bare file name stays one (it is looked for in its folder); a path is made absolute.
    static func path(_ value: String) -> String { value.contains("/") ? absolutePath(value) : value }

    /// These options as arguments for `EngineOptions.parse`.
    var arguments: [String] {
        [
            ("--unet", unet), ("--unet-high", unetHigh), ("--unet-low", unetLow), ("--text-encoder", textEncoder),
            ("--vae", vae),
        ].flatMap { flag, value in value.map { [flag, $0] } ?? [] }
    }
}

/// `reel models DIR`: what a ComfyUI model folder holds.
struct ModelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "List the Wan2.2 files of a ComfyUI model folder: what each is and which model it belongs to.",
        discussion: """
            DIR is a ComfyUI models/ folder (or one that has models/). Each .safetensors file of diffusion_models/, \
            text_encoders/, vae/ and loras/ is read from its header: a transformer's model from its width, input \
            channels and blocks, a VAE's version from its decoder's layout, and whether fp8 weights carry their \
            scales. Use the folder as --model comfyui:DIR, choosing files with --unet or --unet-high/--unet-low.
            """)

    @Argument(help: "The ComfyUI models/ folder.") var folder: String

    func run() throws {
        let root: ComfyFolder
        do { root = try ComfyFolder(absolutePath(folder)) } catch { throw ValidationError(error.message) }
        print("folder: \(root.root.path)")
        for row in root.listing() {
            guard let file = row.file else {
                print("\(row.folder)/\(row.name)  unreadable: \(row.error ?? "")")
                continue
            }
            var what: String
            switch file.kind {
            case .transformer:
                what = "transformer " + (file.architecture.map { (file.tiny ? "tiny:" : "") + $0.rawValue } ?? "?")
            case .vae: what = "VAE \(file.vaeVersion ?? "?")"
            case .textEncoder: what = "text encoder (UMT5)"
            case .lora: what = "LoRA"
            case .unknown: what = "not a Wan2.2 file Reel reads"
            }
            let dtype = (file.dtypes.first ?? "?") + (file.fp8Scaled ? " scaled" : "")
            let size = String(format: "%.2f GB", Double(file.bytes) / 1e9)
            print(
                "\(row.folder)/\(row.name)  \(what)  \(dtype)  \(size)"
                    + (file.problem.map { "  problem: \($0)" } ?? ""))
        }
        do {
            let (info, spec) = try root.resolve(ComfyModelSpec(folder: root.root.path))
            print("default model: \(info.architecture.rawValue) (--model \(spec.name))")
        } catch {
            print("default model: none (\(error.message))")
        }
    }
}
