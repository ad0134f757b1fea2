/// A fully resolved, validated description of one video to generate: every value concrete.
public struct GenerationSpec: Sendable, Equatable, Codable {
    public var prompt: String
    public var negativePrompt: String
    public var width: Int
    public var height: Int
    public var frames: Int
    public var fps: Int
    public var steps: Int
    public var guidance: Double
    public var guidance2: Double?
    public var seed: UInt64
    public var pngFrames: Bool
    public var model: String
    /// The style applied to the prompt, when one was; `prompt` and `negativePrompt` are already styled.
    public var style: String?
    /// The prompt as the user wrote it, before the style wrapped it; nil when no style was applied.
    public var userPrompt: String?
    /// Frame interpolation factor (2 or 4) applied after decoding; nil or 1 for none.
    public var interpolate: Int?
    /// The duration the user asked for, when given in seconds, to show how it was rounded to frames.
    public var requestedSeconds: Double?
    /// The picture the video starts from (image-to-video), and the one it ends on (I2V-A14B); nil for none.
    public var image: ImageReference?
    public var lastImage: ImageReference?
    /// How the images are fitted to the size; nil when there is no image.
    public var fit: ImageFit?
    /// The LoRAs applied, in order, each by name and content hash; nil for none.
    public var loras: [ResolvedLoRA]?
    /// The recipe the job was made with (`lightning-4step`); its values are already in the other fields.
    public var recipe: String?
    /// The sampler, when not the model's own scheduler (the recipe's step-distilled one).
    public var sampler: SamplerSpec?

    public init(
        prompt: String, negativePrompt: String, width: Int, height: Int, frames: Int, fps: Int, steps: Int,
        guidance: Double, guidance2: Double?, seed: UInt64, pngFrames: Bool, model: String, style: String? = nil,
        userPrompt: String? = nil, interpolate: Int? = nil, requestedSeconds: Double? = nil,
        image: ImageReference? = nil, lastImage: ImageReference? = nil, fit: ImageFit? = nil,
        loras: [ResolvedLoRA]? = nil, recipe: String? = nil, sampler: SamplerSpec? = nil
    ) {
        self.loras = loras
        self.recipe = recipe
        self.sampler = sampler
        self.image = image
        self.lastImage = lastImage
        self.fit = fit
        self.style = style
        self.userPrompt = userPrompt
        self.interpolate = interpolate
        self.requestedSeconds = requestedSeconds
        self.prompt = prompt
        self.negativePrompt = negativePrompt
        self.width = width
        self.height = height
        self.frames = frames
        self.fps = fps
        self.steps = steps
        self.guidance = guidance
        self.guidance2 = guidance2
        self.seed = seed
        self.pngFrames = pngFrames
        self.model = model
    }

    /// The video's duration in seconds.
    public var seconds: Double { Double(frames) / Double(fps) }
    public var size: String { "\(width)x\(height)" }
    /// The frame count of the delivered video, after interpolation.
    public var outputFrames: Int { (frames - 1) * max(interpolate ?? 1, 1) + 1 }
    /// The frame rate of the delivered video, after interpolation.
    public var outputFPS: Int { fps * max(interpolate ?? 1, 1) }

    /// What a worker must hold to run this job without switching adapters: the LoRAs (content, scale, expert) in
    /// order, as one canonical text; "" for the base model. Two jobs with the same text run on a warm worker back to
    /// back with no LoRA switch (the store keeps its SHA-256 as the job's `lora_key`).
    public var adapterSet: String {
        (loras ?? []).map { "\($0.sha256):\($0.scale):\($0.expert.rawValue)" }.joined(separator: ";")
    }
}

/// What a user asks for: any field may be missing and takes the model's default.
public struct GenerationRequest: Sendable, Equatable {
    public var prompt: String?
    public var negativePrompt: String?
    /// "WxH".
    public var size: String?
    public var frames: Int?
    public var seconds: Double?
    public var steps: Int?
    public var guidance: Double?
    public var seed: UInt64?
    public var pngFrames: Bool
    /// A style name from the style library.
    public var style: String?
    /// The generation frame rate; defaults to the model's (24 for TI2V-5B, 16 for A14B).
    public var fps: Int?
    /// 1, 2 or 4: multiply the frame rate by motion-compensated interpolation.
    public var interpolate: Int?
    /// The first and last images, already read and checked (`ImageHeader`); `size` may then be `auto`.
    public var image: ImageReference?
    public var lastImage: ImageReference?
    public var fit: ImageFit?
    /// LoRAs from the library, by name.
    public var loras: [LoRAUse]
    /// A recipe name (`lightning-4step`), and the LoRA pair it applies when not the server's default.
    public var recipe: String?
    public var recipeLoRAs: RecipeLoRAs?
    /// The low-noise expert's guidance (A14B), when not `guidance`'s.
    public var guidance2: Double?
    /// A sampler other than the model's own (ComfyUI's, translated); not with a recipe.
    public var sampler: SamplerSpec?

    public init(
        prompt: String? = nil, negativePrompt: String? = nil, size: String? = nil, frames: Int? = nil,
        seconds: Double? = nil, steps: Int? = nil, guidance: Double? = nil, seed: UInt64? = nil,
        pngFrames: Bool = false, style: String? = nil, fps: Int? = nil, interpolate: Int? = nil,
        image: ImageReference? = nil, lastImage: ImageReference? = nil, fit: ImageFit? = nil,
        loras: [LoRAUse] = [], recipe: String? = nil, recipeLoRAs: RecipeLoRAs? = nil
    ) {
        self.loras = loras
        self.recipe = recipe
        self.recipeLoRAs = recipeLoRAs
        self.image = image
        self.lastImage = lastImage
        self.fit = fit
        self.style = style
        self.fps = fps
        self.interpolate = interpolate
        self.prompt = prompt
        self.negativePrompt = negativePrompt
        self.size = size
        self.frames = frames
        self.seconds = seconds
        self.steps = steps
        self.guidance = guidance
        self.seed = seed
        self.pngFrames = pngFrames
    }
}

/// Bounds enforced before any GPU work, so an absurd request never reaches a worker.
public struct GenerationLimits: Sendable, Equatable {
    public var maxFrames: Int
    public var maxPixelsPerFrame: Int
    public var maxSteps: Int
    public var maxPromptCharacters: Int

    public init(
        maxFrames: Int = 257, maxPixelsPerFrame: Int = 1920 * 1088, maxSteps: Int = 200,
        maxPromptCharacters: Int = 4000
    ) {
        self.maxFrames = maxFrames
        self.maxPixelsPerFrame = maxPixelsPerFrame
        self.maxSteps = maxSteps
        self.maxPromptCharacters = maxPromptCharacters
    }

    public static let standard = GenerationLimits()
}
