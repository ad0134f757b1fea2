/// One file of the LoRA library, as listed: its name (the file name without `.safetensors`), its size and content
/// hash, and what its header says it is, or why it cannot be used.
public struct LoRAEntry: Sendable, Equatable {
    public var name: String
    public var bytes: Int
    /// Lowercase hex SHA-256 of the file.
    public var sha256: String
    public var info: LoRAFileInfo?
    /// Why the file cannot be applied (unknown keys, a shape no model has …); nil when `info` is set.
    public var problem: String?

    public init(name: String, bytes: Int, sha256: String, info: LoRAFileInfo?, problem: String?) {
        self.name = name
        self.bytes = bytes
        self.sha256 = sha256
        self.info = info
        self.problem = problem
    }
}

/// The LoRAs a server or command can apply, by name: a snapshot of the library directory, so one submission (a
/// whole batch) resolves every name against the same files.
public struct LoRACatalog: Sendable, Equatable {
    public var entries: [LoRAEntry]
    /// Where the files are, for messages.
    public var directory: String?
    /// How many LoRAs one expert can hold in one job (the workers' adapter slots).
    public var maxPerExpert: Int
    /// The LoRA pair each recipe applies when a job names none, by recipe name.
    public var recipeLoRAs: [String: RecipeLoRAs]
    /// The highest rank the workers' slots take (`--lora-max-rank`).
    public var maxRank: Int

    public init(
        entries: [LoRAEntry], directory: String? = nil, maxPerExpert: Int = LoRACatalog.defaultSlots,
        recipeLoRAs: [String: RecipeLoRAs] = [:], maxRank: Int = LoRACatalog.defaultMaxRank
    ) {
        self.maxRank = maxRank
        self.entries = entries.sorted { $0.name < $1.name }
        self.directory = directory
        self.maxPerExpert = maxPerExpert
        self.recipeLoRAs = recipeLoRAs
    }

    /// The workers' default adapter slots: a 4-step pair takes one on each expert, leaving one for a style.
    public static let defaultSlots = 2
    /// The workers' default slot rank: that of the lightx2v 4-step LoRAs.
    public static let defaultMaxRank = 64

    public static let empty = LoRACatalog(entries: [])

    /// The entry of that name (exact; names are file names), or an error listing the closest names.
    public func entry(named name: String, field: String = "loras") throws(ReelError) -> LoRAEntry {
        if let entry = entries.first(where: { $0.name == name }) { return entry }
        let listing = "(list them with `reel loras` or GET /v1/loras)"
        guard !entries.isEmpty else {
            let place = directory.map { " in \($0)" } ?? ""
            throw .invalid(
                field, "unknown LoRA \(name.quotedForMessage()); the LoRA library\(place) is empty \(listing)")
        }
        let closest = NameSuggestions.closest(to: name, among: entries.map(\.name), count: 3)
        let hint = closest.isEmpty ? "" : "; the closest are \(closest.joined(separator: ", "))"
        throw .invalid(field, "unknown LoRA \(name.quotedForMessage())\(hint) \(listing)")
    }

    /// The uses resolved for one model: each name found, usable, made for this model, on an expert it has, and no
    /// expert holding more than `maxPerExpert` or the same file twice.
    public func resolve(
        _ uses: [LoRAUse], for model: ModelInfo, field: String = "loras"
    ) throws(ReelError)
        -> [ResolvedLoRA]
    {
        let fit = ModelFit(model)
        let twoExperts = model.architecture != .ti2v5B
        var resolved: [ResolvedLoRA] = []
        var seen: [String: Set<LoRAExpert>] = [:]
        for use in uses {
            try use.checkScale(field: field)
            let entry = try entry(named: use.name, field: field)
            guard let info = entry.info else {
                throw .invalid(field, "LoRA \(use.name) cannot be used: \(entry.problem ?? "its file is unreadable")")
            }
            guard info.fits.contains(fit.name) else {
                let made =
                    info.architectures.isEmpty
                    ? info.fits.joined(separator: ", ") : info.architectures.joined(separator: ", ")
                throw .invalid(
                    field,
                    "\(use.name) is a LoRA for \(made) (dim \(info.dim)); this server runs "
                        + "\(model.name) (\(model.architecture.rawValue))")
            }
            guard info.rank <= maxRank else {
                throw .invalid(
                    field,
                    "LoRA \(use.name) has rank \(info.rank), above the workers' slots of rank \(maxRank) (serve "
                        + "--lora-max-rank)")
            }
            if !twoExperts, use.expert != .both {
                throw .invalid(
                    field,
                    "LoRA \(use.name)@\(use.expert.rawValue): \(model.architecture.rawValue) has one transformer, "
                        + "not a high- and a low-noise expert; leave out @\(use.expert.rawValue)")
            }
            let experts: [LoRAExpert] =
                twoExperts ? [.high, .low].filter { use.expert.covers(high: $0 == .high) } : [.both]
            for expert in experts {
                guard seen[entry.sha256, default: []].insert(expert).inserted else {
                    throw .invalid(field, "LoRA \(use.name) is given twice for the \(expert.rawValue) expert")
                }
            }
            resolved.append(
                ResolvedLoRA(
                    name: entry.name, sha256: entry.sha256, bytes: entry.bytes, scale: use.scale,
                    expert: use.expert))
        }
        for expert in twoExperts ? [LoRAExpert.high, .low] : [.both] {
            let count = resolved.filter { twoExperts ? $0.expert.covers(high: expert == .high) : true }.count
            guard count <= maxPerExpert else {
                let which = twoExperts ? "the \(expert.rawValue)-noise expert" : "the model"
                throw .invalid(
                    field,
                    "\(count) LoRAs on \(which); the workers hold at most \(maxPerExpert) per expert "
                        + "(serve --lora-slots)")
            }
        }
        return resolved
    }
}

/// A named generation recipe: values a job takes together, resolved by the server before validation.
public enum Recipe: String, Sendable, CaseIterable {
    /// The 4-step distilled recipe of the Wan2.2 Lightning / lightx2v LoRA pairs: 4 steps, 2 on the high-noise and
    /// 2 on the low-noise expert, no classifier-free guidance, flow shift 5, the step list [1000, 750, 500, 250]
    /// (LightX2V's Wan22StepDistillScheduler and its wan_moe_*_distill configs).
    case lightning4Step = "lightning-4step"

    public static func named(_ name: String, field: String = "recipe") throws(ReelError) -> Recipe {
        guard let recipe = Recipe(rawValue: name.trimmingWhitespace.lowercased()) else {
            throw .invalid(
                field,
                "unknown recipe \(name.quotedForMessage()); the recipes are "
                    + allCases.map(\.rawValue).joined(separator: ", "))
        }
        return recipe
    }

    public var steps: Int { 4 }
    public var guidance: Double { 1 }
    public var sampler: SamplerSpec { SamplerSpec(shift: 5, denoisingSteps: [1000, 750, 500, 250]) }
    /// The architectures the recipe's distilled LoRAs exist for.
    public var architectures: [Architecture] { [.t2vA14B, .i2vA14B] }
}

/// The LoRA pair a recipe applies when the job names none: `--recipe-lora lightning-4step=HIGH,LOW` on the server.
public struct RecipeLoRAs: Sendable, Equatable {
    public var high: String
    public var low: String

    public init(high: String, low: String) {
        self.high = high
        self.low = low
    }

    /// Reads `HIGH,LOW` (two library names); the field names the value in errors.
    public static func parse(_ text: String, field: String = "recipe_loras") throws(ReelError) -> RecipeLoRAs {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingWhitespace }
        guard parts.count == 2, parts.allSatisfy(LoRAUse.isValidName) else {
            throw .invalid(
                field,
                "\(text.quotedForMessage()) is not two LoRA names separated by a comma: the high-noise expert's, "
                    + "then the low-noise expert's (HIGH,LOW)")
        }
        return RecipeLoRAs(high: parts[0], low: parts[1])
    }

    var uses: [LoRAUse] { [LoRAUse(name: high, expert: .high), LoRAUse(name: low, expert: .low)] }
}
