import ArgumentParser
import Foundation
import ReelAPI
import ReelCore
import ReelScheduler
import ReelStore

/// Where the LoRA library is and how workers hold LoRAs: shared by every command that runs or lists them.
struct LoRALibraryOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The LoRA library: a directory of *.safetensors files, each named by its file name (default "
                + "DATA_DIR/loras).", valueName: "dir"))
    var loraDir: String?

    @Option(
        help: ArgumentHelp(
            "LoRAs one expert holds at once in a job: the workers' adapter slots (default 2: a 4-step pair takes one "
                + "on each expert, leaving one for a style).", valueName: "count"))
    var loraSlots: Int?

    @Option(
        help: ArgumentHelp(
            "The largest LoRA rank the workers' slots take (default 64, the rank of the lightx2v 4-step LoRAs).",
            valueName: "rank"))
    var loraMaxRank: Int?

    @Option(
        help: ArgumentHelp(
            "The LoRA pair a recipe applies when a job names none, by library name: lightning-4step=HIGH,LOW "
                + "(repeatable).", valueName: "recipe=high,low"))
    var recipeLora: [String] = []

    func validate() throws {
        if let loraSlots, !(0...8).contains(loraSlots) {
            throw ValidationError("--lora-slots must be between 0 and 8, not \(loraSlots)")
        }
        if let loraMaxRank, !(1...1024).contains(loraMaxRank) {
            throw ValidationError("--lora-max-rank must be between 1 and 1024, not \(loraMaxRank)")
        }
        _ = try recipeLoRAs()
    }

    func directory(dataDirectory: String) -> String {
        loraDir.map { absolutePath($0) } ?? dataDirectory + "/loras"
    }

    func library(dataDirectory: String) -> LoRALibrary {
        LoRALibrary(directory: directory(dataDirectory: dataDirectory))
    }

    /// `--recipe-lora` by recipe name.
    func recipeLoRAs() throws -> [String: RecipeLoRAs] {
        var pairs: [String: RecipeLoRAs] = [:]
        for text in recipeLora {
            let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
            do throws(ReelError) {
                guard parts.count == 2 else {
                    throw .invalid("--recipe-lora", "\(text.quotedForMessage()) is not RECIPE=HIGH,LOW")
                }
                let recipe = try Recipe.named(parts[0], field: "--recipe-lora")
                pairs[recipe.rawValue] = try RecipeLoRAs.parse(parts[1], field: "--recipe-lora")
            } catch {
                throw ValidationError("--recipe-lora: \(error.message)")
            }
        }
        return pairs
    }

    /// The library as it is now, as a job's LoRAs are resolved against it.
    func catalog(dataDirectory: String) throws -> LoRACatalog {
        library(dataDirectory: dataDirectory).catalog(
            maxPerExpert: loraSlots ?? LoRACatalog.defaultSlots, recipeLoRAs: try recipeLoRAs(),
            maxRank: loraMaxRank ?? LoRACatalog.defaultMaxRank)
    }

    /// Sets the library and the workers' slots on a scheduler's configuration.
    func apply(to configuration: inout SchedulerConfiguration) {
        configuration.loraDirectory = directory(dataDirectory: configuration.dataDirectory)
        configuration.loraSlots = loraSlots
        configuration.loraMaxRank = loraMaxRank
    }
}

/// The LoRAs and recipe of one job, as `reel generate` takes them.
struct JobLoRAOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "A LoRA from the library, NAME[:SCALE][@high|low] (repeatable; @high or @low applies it to one expert of "
                + "an A14B model only).", valueName: "lora"))
    var lora: [String] = []

    @Option(
        help: ArgumentHelp("A recipe: lightning-4step (4 steps, no guidance, with its LoRA pair).", valueName: "name"))
    var recipe: String?

    @Option(
        help: ArgumentHelp(
            "The recipe's LoRA pair, HIGH,LOW by library name (default: the --recipe-lora given).",
            valueName: "high,low"))
    var recipeLoras: String?

    /// The LoRAs and the recipe's pair as a submission to a server names them (checked here for their form; the
    /// server resolves them).
    func submission() throws -> (loras: [LoRARequest]?, recipeLoRAs: RecipeLoRAPair?) {
        var request = GenerationRequest()
        do throws(ReelError) { try apply(to: &request) } catch { throw ValidationError(error.description) }
        return (
            request.loras.isEmpty ? nil : request.loras.map(LoRARequest.init),
            request.recipeLoRAs.map(RecipeLoRAPair.init)
        )
    }

    /// Sets the LoRAs and recipe on a request.
    func apply(to request: inout GenerationRequest) throws(ReelError) {
        request.loras = try lora.map { text throws(ReelError) in try LoRAUse.parse(text, field: "--lora") }
        request.recipe = recipe
        request.recipeLoRAs = try recipeLoras.map { text throws(ReelError) in
            try RecipeLoRAs.parse(text, field: "--recipe-loras")
        }
    }
}

/// `reel loras`: list the LoRA library.
struct LoRAsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loras", abstract: "List the LoRA library: each file's format, rank and the models it fits.",
        discussion: """
            The library is DATA_DIR/loras (or --lora-dir): *.safetensors files in the diffusers/PEFT, kohya/kijai, \
            ComfyUI, musubi or lightx2v key layouts. A job names a file by its name without .safetensors.
            """)

    @Option(help: "Where Reel keeps its data (default $REEL_DATA_DIR or ~/.local/share/reel).")
    var dataDir: String?

    @OptionGroup var library: LoRALibraryOptions

    @Flag(help: "Print the list as JSON, as GET /v1/loras gives it.")
    var json = false

    func run() throws {
        let dataDirectory = dataDir.map { absolutePath($0) } ?? EngineOptions.defaultDataDirectory
        let catalog = try library.catalog(dataDirectory: dataDirectory)
        if json {
            let rows: [[String: Any]] = catalog.entries.map { entry in
                [
                    "name": entry.name, "bytes": entry.bytes, "sha256": entry.sha256,
                    "format": entry.info?.format ?? NSNull(), "rank": entry.info?.rank ?? NSNull(),
                    "dim": entry.info?.dim ?? NSNull(), "blocks": entry.info?.blocks ?? NSNull(),
                    "architectures": entry.info?.fits ?? NSNull(), "error": entry.problem ?? NSNull(),
                ]
            }
            let data = try JSONSerialization.data(withJSONObject: ["data": rows], options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        guard !catalog.entries.isEmpty else {
            print("no LoRAs in \(catalog.directory ?? "the library"): put *.safetensors files there")
            return
        }
        for entry in catalog.entries {
            let size = String(format: "%.1f MB", Double(entry.bytes) / 1e6)
            if let info = entry.info {
                print(
                    "\(entry.name)  \(info.format)  rank \(info.rank)  \(size)  fits "
                        + "\(info.fits.joined(separator: ", "))  sha256 \(entry.sha256.prefix(12))")
            } else {
                print("\(entry.name)  unusable  \(size): \(entry.problem ?? "")")
            }
        }
    }
}
