import ReelCore

/// The body of `POST /v1/jobs`: a job spec with the batch CSV's column names, plus `model`, `style` and `priority`.
///
/// Every field may be left out (or null) and then takes the model's default; `prompt` is required by validation.
/// A client encodes it with absent fields left out; the server reads a body with its own reader, which names the
/// field of any value of the wrong type (`JobSubmission(json:)`), rather than with `Decodable`.
public struct JobSubmission: Sendable, Equatable, Codable {
    public var prompt: String?
    public var negativePrompt: String?
    /// A style name from the server's style library.
    public var style: String?
    /// "WIDTHxHEIGHT".
    public var size: String?
    public var seconds: Double?
    public var frames: Int?
    public var steps: Int?
    public var guidance: Double?
    /// 0…2^63−1 (`Int64.max`); sent as an exact JSON integer.
    public var seed: UInt64?
    /// Must be the server's model name when given.
    public var model: String?
    public var pngFrames: Bool?
    /// -100…100; higher runs first. Absent means 0.
    public var priority: Int?
    /// The generation frame rate; the model's when absent.
    public var fps: Int?
    /// 1, 2 or 4: frame interpolation factor.
    public var interpolate: Int?
    /// The picture the video starts from: an image id from `POST /v1/images` (`img_…`) or a `data:` URL; and the
    /// one it ends on (I2V-A14B). In a batch CSV read by `reel batch`, a path relative to the CSV.
    public var image: String?
    public var lastImage: String?
    /// `cover` (the default), `contain` or `stretch`.
    public var fit: String?
    /// LoRAs from the server's library (`GET /v1/loras`), applied in order.
    public var loras: [LoRARequest]?
    /// A recipe (`lightning-4step`), and the LoRA pair it applies when not the server's default.
    public var recipe: String?
    public var recipeLoRAs: RecipeLoRAPair?

    public init(
        prompt: String? = nil, negativePrompt: String? = nil, style: String? = nil, size: String? = nil,
        seconds: Double? = nil, frames: Int? = nil, steps: Int? = nil, guidance: Double? = nil, seed: UInt64? = nil,
        model: String? = nil, pngFrames: Bool? = nil, priority: Int? = nil, fps: Int? = nil, interpolate: Int? = nil,
        image: String? = nil, lastImage: String? = nil, fit: String? = nil, loras: [LoRARequest]? = nil,
        recipe: String? = nil, recipeLoRAs: RecipeLoRAPair? = nil
    ) {
        self.loras = loras
        self.recipe = recipe
        self.recipeLoRAs = recipeLoRAs
        self.image = image
        self.lastImage = lastImage
        self.fit = fit
        self.fps = fps
        self.interpolate = interpolate
        self.prompt = prompt
        self.negativePrompt = negativePrompt
        self.style = style
        self.size = size
        self.seconds = seconds
        self.frames = frames
        self.steps = steps
        self.guidance = guidance
        self.seed = seed
        self.model = model
        self.pngFrames = pngFrames
        self.priority = priority
    }

    /// The field names a submission understands: the batch CSV's columns and the API's own.
    public static let knownFields: [String] = SpecFields.known

    public static let priorityRange = SpecRow.priorityRange

    enum CodingKeys: String, CodingKey {
        case prompt, style, size, seconds, frames, steps, guidance, seed, model, priority, fps, interpolate, image, fit
        case loras, recipe
        case recipeLoRAs = "recipe_loras"
        case negativePrompt = "negative_prompt"
        case lastImage = "last_image"
        case pngFrames = "png_frames"
    }
}

/// One LoRA of a submission: a library name, its strength (1 when absent) and the expert it goes to (`both` when
/// absent; `high` or `low` on the two-expert A14B models).
public struct LoRARequest: Sendable, Equatable, Codable {
    public var name: String
    public var scale: Double?
    public var expert: String?

    public init(name: String, scale: Double? = nil, expert: String? = nil) {
        self.name = name
        self.scale = scale
        self.expert = expert
    }
}

/// The LoRA pair of a recipe: the high-noise expert's and the low-noise expert's, by library name.
public struct RecipeLoRAPair: Sendable, Equatable, Codable {
    public var high: String
    public var low: String

    public init(high: String, low: String) {
        self.high = high
        self.low = low
    }
}

extension LoRARequest {
    /// A use as the text form or the command line gives it, as a submission names it.
    public init(_ use: LoRAUse) {
        self.init(name: use.name, scale: use.scale, expert: use.expert.rawValue)
    }
}

extension RecipeLoRAPair {
    public init(_ pair: RecipeLoRAs) {
        self.init(high: pair.high, low: pair.low)
    }
}
