import ArgumentParser
import Foundation
import Logging
import ReelCore
import ReelWorker

/// The options that choose a model, a device and where Reel keeps its data.
struct EngineOptions: ParsableArguments {
    @Option(help: "tiny, tiny:t2v-a14b, random:ti2v-5b, random:t2v-a14b, or a diffusers Wan2.2 directory.")
    var model: String = "tiny"

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

    /// A model directory is passed to the worker as an absolute path.
    var modelArgument: String {
        ModelCatalog.builtInNames.contains(model) ? model : absolutePath(model)
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
