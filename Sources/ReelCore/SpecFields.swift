/// One row of a batch: what to generate, plus the queueing fields that are not part of the video.
public struct SpecRow: Sendable, Equatable {
    public var request: GenerationRequest
    /// The model the row names; a server accepts only its own.
    public var model: String?
    public var priority: Int?
    /// The row's images as written (a path relative to a CSV, an image id), before they are read: an
    /// `ImageResolver` turns them into `request.image` and `request.lastImage`.
    public var imageName: String?
    public var lastImageName: String?

    /// The priorities a row or a submission may have: higher runs first; absent means 0.
    public static let priorityRange = -100...100

    public init(
        request: GenerationRequest, model: String? = nil, priority: Int? = nil, imageName: String? = nil,
        lastImageName: String? = nil
    ) {
        self.imageName = imageName
        self.lastImageName = lastImageName
        self.request = request
        self.model = model
        self.priority = priority
    }
}

/// The named fields of a job spec as text (a CSV row, a form), turned into typed values.
///
/// Column names are those of the batch CSV; an unknown name is an error that names it.
public enum SpecFields {
    /// The columns this version understands.
    public static let known: [String] = [
        "prompt", "negative_prompt", "style", "size", "seconds", "frames", "fps", "steps", "guidance", "seed", "model",
        "interpolate", "png_frames", "priority", "image", "last_image", "fit", "loras", "recipe", "recipe_loras",
    ]

    public static func row(from fields: [String: String]) throws(ReelError) -> SpecRow {
        var row = SpecRow(request: try request(from: fields))
        if let model = fields["model"]?.trimmingWhitespace, !model.isEmpty { row.model = model }
        if let image = fields["image"]?.trimmingWhitespace, !image.isEmpty { row.imageName = image }
        if let image = fields["last_image"]?.trimmingWhitespace, !image.isEmpty { row.lastImageName = image }
        if let text = fields["priority"]?.trimmingWhitespace, !text.isEmpty {
            guard let priority = Numerals.wholeNumber(text, allowNegative: true) else {
                throw .invalid(
                    "priority", "\(text.quotedForMessage()) is not a whole number (digits, optionally after -)")
            }
            row.priority = priority
        }
        return row
    }

    public static func request(from fields: [String: String]) throws(ReelError) -> GenerationRequest {
        for name in fields.keys.sorted() where !known.contains(name) {
            throw .invalid(
                String(name.unicodeScalars.prefix(60)),
                "unknown column \(name.quotedForMessage(limit: 60)); the known columns are \(known.joined(separator: ", "))"
            )
        }
        func text(_ name: String) -> String? {
            guard let value = fields[name]?.trimmingWhitespace, !value.isEmpty else { return nil }
            return value
        }
        func integer(_ name: String) throws(ReelError) -> Int? {
            guard let value = text(name) else { return nil }
            guard let number = Numerals.wholeNumber(value) else {
                throw .invalid(name, "\(value.quotedForMessage()) is not a whole number (ASCII digits only)")
            }
            return number
        }
        func number(_ name: String) throws(ReelError) -> Double? {
            guard let value = text(name) else { return nil }
            guard let number = Numerals.decimal(value) else {
                throw .invalid(name, "\(value.quotedForMessage()) is not a number (such as 2, 2.5 or 1e1)")
            }
            return number
        }
        var request = GenerationRequest()
        request.prompt = fields["prompt"]
        request.negativePrompt = text("negative_prompt")
        request.size = text("size")
        request.frames = try integer("frames")
        request.seconds = try number("seconds")
        request.steps = try integer("steps")
        request.fps = try integer("fps")
        request.interpolate = try integer("interpolate")
        request.style = text("style")
        request.guidance = try number("guidance")
        request.fit = try text("fit").map { value throws(ReelError) in try ImageFit.parse(value) }
        if let value = text("loras") { request.loras = try LoRAUse.parseList(value) }
        request.recipe = text("recipe")
        request.recipeLoRAs = try text("recipe_loras").map { value throws(ReelError) in
            try RecipeLoRAs.parse(value)
        }
        if let seed = text("seed") {
            guard let value = Numerals.wholeNumber(seed) else {
                throw .invalid(
                    "seed", "\(seed.quotedForMessage()) is not a whole number between 0 and \(Int64.max)")
            }
            request.seed = UInt64(value)
        }
        if let flag = text("png_frames") {
            switch flag.lowercased() {
            case "1", "true", "yes", "y": request.pngFrames = true
            case "0", "false", "no", "n": request.pngFrames = false
            default: throw .invalid("png_frames", "\(flag.quotedForMessage()) is not true or false")
            }
        }
        return request
    }
}
