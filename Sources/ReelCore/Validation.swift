import Foundation

/// Turns a `GenerationRequest` into a `GenerationSpec` for one model, or explains what is wrong.
///
/// Every message names the field and, where a nearby value would be valid, gives it.
public enum Validation {
    public static func resolve(
        _ request: GenerationRequest, model: ModelInfo, limits: GenerationLimits = .standard,
        styles: StyleLibrary = .builtIn, loras: LoRACatalog = .empty,
        randomSeed: () -> UInt64 = { UInt64.random(in: 0...UInt64(Int64.max)) }
    ) throws(ReelError) -> GenerationSpec {
        let userPrompt = (request.prompt ?? "").trimmingWhitespace
        guard !userPrompt.isEmpty else {
            throw .invalid("prompt", "the prompt is empty; describe the video to generate")
        }
        // The limits bound what the user wrote; a style adds a fixed template around it.
        try checkLength(userPrompt, field: "prompt", what: "the prompt", limit: limits.maxPromptCharacters)
        let userNegative = request.negativePrompt ?? ""
        try checkLength(
            userNegative, field: "negative_prompt", what: "the negative prompt", limit: limits.maxPromptCharacters)
        var prompt = userPrompt
        var styleName: String?
        var negativeFromStyle: String?
        if let name = request.style?.trimmingWhitespace, !name.isEmpty {
            let style = try styles.style(named: name)
            (prompt, negativeFromStyle) = style.apply(prompt: userPrompt, negativePrompt: request.negativePrompt ?? "")
            styleName = style.name
        }
        let negative = negativeFromStyle ?? request.negativePrompt ?? ""

        try checkImages(request, architecture: model.architecture)
        var width = model.defaults.width
        var height = model.defaults.height
        if let size = request.size?.trimmingWhitespace, !size.isEmpty {
            if size.lowercased() == "auto" {
                guard let image = request.image else {
                    throw .invalid("size", "size auto follows the image's aspect ratio, and no image was given")
                }
                let preset = VideoPresets.nearest(toAspectOf: image, for: model.architecture)
                (width, height) = (preset.width, preset.height)
            } else if let preset = VideoPresets.preset(named: size, for: model.architecture) {
                (width, height) = (preset.width, preset.height)
            } else if size.first?.isLetter == true {
                let names = VideoPresets.presets(for: model.architecture).map(\.name).joined(separator: ", ")
                throw .invalid(
                    "size",
                    "\(size.quotedForMessage()) is not a size preset of \(model.architecture.rawValue) (\(names)) "
                        + "nor WIDTHxHEIGHT")
            } else {
                (width, height) = try parseSize(
                    size, stride: model.spatialStride, architecture: model.architecture,
                    maxPixels: limits.maxPixelsPerFrame)
            }
        }
        // Both sides are at most `maxSide` here (presets are small), so the product cannot overflow.
        let pixels = width * height
        guard pixels <= limits.maxPixelsPerFrame else {
            throw .invalid(
                "size", "\(width)x\(height) has \(pixels) pixels per frame; the limit is \(limits.maxPixelsPerFrame)")
        }

        let fps = request.fps ?? model.fps
        guard (1...60).contains(fps) else { throw .invalid("fps", "fps must be between 1 and 60, not \(fps)") }
        let interpolate = request.interpolate ?? 1
        guard [1, 2, 4].contains(interpolate) else {
            throw .invalid("interpolate", "interpolate must be 1, 2 or 4, not \(interpolate)")
        }
        if request.frames != nil && request.seconds != nil {
            throw .invalid("frames", "give either frames or seconds, not both")
        }
        let frames: Int
        if let requested = request.frames {
            guard requested >= 1 else { throw .invalid("frames", "frames must be at least 1 (4n+1: 1, 5, 9, …)") }
            guard requested <= limits.maxFrames else {
                throw .invalid("frames", "\(requested) frames exceeds the limit of \(limits.maxFrames)")
            }
            guard requested % model.temporalStride == 1 else {
                throw .invalid(
                    "frames",
                    "\(requested) frames is not of the form 4n+1; the nearest valid count is \(nearestFrames(requested))"
                )
            }
            frames = requested
        } else if let seconds = request.seconds {
            guard seconds.isFinite, seconds > 0 else {
                throw .invalid("seconds", "seconds must be a positive number")
            }
            // Bounded before it becomes a frame count: at `fps` frames a second, more seconds than this cannot fit.
            let longest = Double(limits.maxFrames) / Double(fps)
            guard seconds <= longest + 1 else {
                throw .invalid(
                    "seconds",
                    "\(seconds) seconds exceeds the limit of \(limits.maxFrames) frames "
                        + "(\(String(format: "%.1f", longest)) s at \(fps) fps)")
            }
            frames = framesFor(seconds: seconds, fps: fps)
        } else {
            frames = model.defaults.frames
        }
        guard frames <= limits.maxFrames else {
            throw .invalid(
                request.seconds != nil ? "seconds" : "frames",
                "\(frames) frames exceeds the limit of \(limits.maxFrames) "
                    + "(\(String(format: "%.1f", Double(limits.maxFrames) / Double(fps))) s at \(fps) fps)")
        }

        var recipe: Recipe?
        var uses = request.loras
        if let name = request.recipe?.trimmingWhitespace, !name.isEmpty {
            let chosen = try Recipe.named(name)
            try checkRecipe(chosen, request: request, architecture: model.architecture)
            guard let pair = request.recipeLoRAs ?? loras.recipeLoRAs[chosen.rawValue] else {
                throw .invalid(
                    "recipe_loras",
                    "recipe \(chosen.rawValue) applies a distilled LoRA pair, and none was named: give recipe_loras "
                        + "HIGH,LOW (two library names), or start the server with --recipe-lora "
                        + "\(chosen.rawValue)=HIGH,LOW")
            }
            uses = pair.uses + uses
            recipe = chosen
        } else if request.recipeLoRAs != nil {
            throw .invalid("recipe_loras", "recipe_loras names a recipe's LoRA pair; give the recipe as well")
        }
        let resolvedLoRAs = try loras.resolve(uses, for: model)

        let steps = recipe?.steps ?? request.steps ?? model.defaults.steps
        guard (1...limits.maxSteps).contains(steps) else {
            throw .invalid("steps", "steps must be between 1 and \(limits.maxSteps), not \(steps)")
        }
        let guidance = recipe?.guidance ?? request.guidance ?? model.defaults.guidance
        guard guidance.isFinite, (0...50).contains(guidance) else {
            throw .invalid("guidance", "guidance must be a number between 0 and 50")
        }
        let guidance2 =
            request.guidance2
            ?? (recipe != nil ? recipe?.guidance : request.guidance == nil ? model.defaults.guidance2 : nil)
        if let guidance2 {
            guard guidance2.isFinite, (0...50).contains(guidance2) else {
                throw .invalid("guidance_2", "guidance_2 must be a number between 0 and 50")
            }
            if request.guidance2 != nil && model.architecture == .ti2v5B {
                throw .invalid("guidance_2", "guidance_2 is the low-noise expert's; \(model.name) has one transformer")
            }
        }
        let sampler = try checkSampler(request.sampler, recipe: recipe, steps: steps, model: model) ?? recipe?.sampler
        let seed = request.seed ?? randomSeed()
        guard seed <= UInt64(Int64.max) else {
            throw .invalid("seed", "the seed must be between 0 and \(Int64.max)")
        }
        return GenerationSpec(
            prompt: prompt, negativePrompt: negative, width: width, height: height, frames: frames, fps: fps,
            steps: steps, guidance: guidance,
            guidance2: guidance2,
            seed: seed, pngFrames: request.pngFrames, model: model.name, style: styleName,
            userPrompt: styleName == nil ? nil : userPrompt, interpolate: interpolate == 1 ? nil : interpolate,
            requestedSeconds: request.frames == nil ? request.seconds : nil, image: request.image,
            lastImage: request.lastImage, fit: request.image == nil ? nil : request.fit ?? .cover,
            loras: resolvedLoRAs.isEmpty ? nil : resolvedLoRAs, recipe: recipe?.rawValue, sampler: sampler)
    }

    /// A sampler a request names (ComfyUI's, translated): a known kind, a shift in (0, 100], one position per step
    /// for the Euler kinds, and a switch step inside the schedule on a model with two experts.
    static func checkSampler(
        _ sampler: SamplerSpec?, recipe: Recipe?, steps: Int, model: ModelInfo
    ) throws(ReelError) -> SamplerSpec? {
        guard let sampler else { return nil }
        if let recipe { throw .invalid("sampler", "recipe \(recipe.rawValue) sets the sampler; give one or the other") }
        guard SamplerSpec.kinds.contains(sampler.kind) else {
            throw .invalid("sampler", "sampler kind must be one of \(SamplerSpec.kinds.joined(separator: ", "))")
        }
        guard sampler.shift.isFinite, sampler.shift > 0, sampler.shift <= 100 else {
            throw .invalid("sampler.shift", "the shift must be above 0 and at most 100, not \(sampler.shift)")
        }
        if sampler.kind != SamplerSpec.flowUniPC {
            guard sampler.denoisingSteps.count == steps,
                zip(sampler.denoisingSteps, sampler.denoisingSteps.dropFirst()).allSatisfy({ $0 > $1 }),
                sampler.denoisingSteps.allSatisfy({ (1...1000).contains($0) })
            else {
                throw .invalid(
                    "sampler.denoising_steps",
                    "one position per step (\(steps)), each in 1 … 1000 and falling")
            }
        }
        if let switchStep = sampler.switchStep {
            guard model.architecture != .ti2v5B else {
                throw .invalid("sampler.switch_step", "\(model.name) has one transformer: nothing to switch to")
            }
            guard (1..<steps).contains(switchStep) else {
                throw .invalid(
                    "sampler.switch_step", "the switch step must be between 1 and \(steps - 1), not \(switchStep)")
            }
        }
        return sampler
    }

    /// Whether a recipe runs on the model and the request leaves it its values: a steps or guidance the recipe
    /// fixes, given differently, is an error naming the field and the recipe.
    static func checkRecipe(
        _ recipe: Recipe, request: GenerationRequest, architecture: Architecture
    )
        throws(ReelError)
    {
        guard recipe.architectures.contains(architecture) else {
            throw .invalid(
                "recipe",
                "recipe \(recipe.rawValue) is for \(recipe.architectures.map(\.rawValue).joined(separator: ", ")), "
                    + "the two-expert models; this model is \(architecture.rawValue)")
        }
        if let steps = request.steps, steps != recipe.steps {
            throw .invalid(
                "steps", "recipe \(recipe.rawValue) takes \(recipe.steps) steps, not \(steps); leave steps out")
        }
        if let guidance = request.guidance, guidance != recipe.guidance {
            throw .invalid(
                "guidance",
                "recipe \(recipe.rawValue) runs without classifier-free guidance (guidance 1), not \(guidance); "
                    + "leave guidance out")
        }
    }

    /// Whether the model takes the images given: an image for a text-only model, none for one that needs it, or a
    /// last image where the model takes none, is an error naming the field and the models that do take it.
    static func checkImages(_ request: GenerationRequest, architecture: Architecture) throws(ReelError) {
        func names(_ architectures: [Architecture]) -> String {
            architectures.map(\.rawValue).joined(separator: ", ")
        }
        switch (architecture.imageInput, request.image) {
        case (.none, .some):
            throw .invalid(
                "image",
                "\(architecture.rawValue) makes videos from text only; the models that take an image are "
                    + names(Architecture.imageModels))
        case (.required, nil):
            throw .invalid("image", "\(architecture.rawValue) makes videos from an image: give one")
        default:
            break
        }
        if request.lastImage != nil {
            guard architecture.takesLastImage else {
                throw .invalid(
                    "last_image",
                    "\(architecture.rawValue) takes no last image; the models that do are "
                        + names(Architecture.lastImageModels))
            }
            guard request.image != nil else {
                throw .invalid("last_image", "a last image needs a first image (image) as well")
            }
        }
    }

    /// The longest side `parseSize` reads; longer ones are refused before any arithmetic.
    public static let maxSide = 1 << 20

    /// Parses "WIDTHxHEIGHT" and checks both sides are positive multiples of the stride and their product is at
    /// most `maxPixels`.
    ///
    /// The grammar: whitespace around the whole value is ignored; each side is ASCII digits only (no sign, no
    /// separators), optionally with spaces or tabs between it and the `x` (or `X`).
    public static func parseSize(
        _ text: String, stride: Int, architecture: Architecture,
        maxPixels: Int = GenerationLimits.standard.maxPixelsPerFrame
    ) throws(ReelError) -> (Int, Int) {
        let malformed = ReelError.invalid(
            "size",
            "size \(text.quotedForMessage()) is not of the form WIDTHxHEIGHT (digits only), for example 1280x704")
        let bytes = Numerals.trimmed(text.utf8)
        let parts = bytes.split(
            omittingEmptySubsequences: false, whereSeparator: { $0 == UInt8(ascii: "x") || $0 == UInt8(ascii: "X") })
        guard parts.count == 2 else { throw malformed }
        var sides: [Int] = []
        for part in parts {
            let digits = part.drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
                .reversed().drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
            guard !digits.isEmpty, digits.allSatisfy(Numerals.isDigit) else {
                if part.contains(UInt8(ascii: "-")) {
                    throw ReelError.invalid(
                        "size", "size \(text.quotedForMessage()) must have a positive width and height")
                }
                throw malformed
            }
            // Leading zeros aside, more digits than the longest side has is too large whatever they say.
            let significant = digits.reversed().drop { $0 == UInt8(ascii: "0") }
            guard significant.count <= String(maxSide).count,
                let side = Numerals.wholeNumber(String(decoding: digits.reversed(), as: UTF8.self)), side <= maxSide
            else {
                throw ReelError.invalid(
                    "size", "size \(text.quotedForMessage()) exceeds the limit of \(maxPixels) pixels per frame")
            }
            sides.append(side)
        }
        let (width, height) = (sides[0], sides[1])
        guard width > 0, height > 0 else {
            throw .invalid("size", "size \(text.quotedForMessage()) must have a positive width and height")
        }
        let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
        guard !overflow, pixels <= maxPixels else {
            throw .invalid(
                "size", "size \(width)x\(height) exceeds the limit of \(maxPixels) pixels per frame")
        }
        guard width % stride == 0, height % stride == 0 else {
            let nearest = "\(nearestMultiple(width, of: stride))x\(nearestMultiple(height, of: stride))"
            throw .invalid(
                "size",
                "size \(width)x\(height) is not a multiple of \(stride) in both sides, as \(architecture.rawValue) "
                    + "needs; the nearest valid size is \(nearest)")
        }
        return (width, height)
    }

    /// How long a text is as the limits count it: Unicode scalars after NFKC normalisation, which is what the text
    /// encoder's tokenizer applies first, so the count is what the model reads. A letter with a combining accent
    /// counts once however it was typed, each combining mark that does not compose counts on its own (a single
    /// "character" cannot carry a 300 KB prompt), and a compatibility character counts as what it expands to
    /// (U+FDFA, one ligature, is 18).
    public static func length(_ text: String) -> Int {
        text.precomposedStringWithCompatibilityMapping.unicodeScalars.count
    }

    private static func checkLength(_ text: String, field: String, what: String, limit: Int) throws(ReelError) {
        // Normalisation composes at most a few scalars into one: a text with many times the limit in scalars is over
        // it without being normalised, which keeps the cost linear whatever the input (and NFKC expands a scalar
        // to at most 18).
        let raw = text.unicodeScalars.count
        if raw / 4 > limit {
            throw .invalid(
                field,
                "\(what) has \(raw) Unicode scalars, far over the limit of \(limit) characters "
                    + "(counted as Unicode scalars after NFKC normalisation)")
        }
        // Normalising reorders each run of combining marks, at a cost that grows with the square of the run.
        try CombiningMarks.check(text, field: field)
        let count = length(text)
        guard count <= limit else {
            throw .invalid(
                field,
                "\(what) has \(count) characters (Unicode scalars after NFKC normalisation); the limit is \(limit)")
        }
    }

    /// The number of frames (4n+1) whose playing time (frames / fps) is closest to a duration:
    /// 5 s at 24 fps is 121 frames (5.04 s), at 16 fps 81 frames (5.06 s).
    public static func framesFor(seconds: Double, fps: Int) -> Int {
        let intervals = ((seconds * Double(fps) - 1) / 4).rounded()
        // Callers bound `seconds` first; the clamp only keeps a careless caller from trapping.
        guard intervals.isFinite else { return 1 }
        return Int(min(max(intervals, 0), Double(1 << 40))) * 4 + 1
    }

    public static func nearestFrames(_ frames: Int) -> Int {
        let bounded = min(max(frames, 1), 1 << 40)
        return max(1, Int((Double(bounded - 1) / 4).rounded()) * 4 + 1)
    }

    /// The multiple of `stride` nearest to `value`; a tie goes to the smaller, cheaper size.
    public static func nearestMultiple(_ value: Int, of stride: Int) -> Int {
        max(stride, (min(value, maxSide) + (stride - 1) / 2) / stride * stride)
    }
}

extension StringProtocol {
    /// The text without the whitespace (Unicode's White_Space) around it; only its ends are looked at.
    var trimmingWhitespace: String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
            let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        if first == scalars.startIndex && scalars.index(after: last) == scalars.endIndex { return String(self) }
        return String(String.UnicodeScalarView(scalars[first...last]))
    }
}
