import ReelAPI
import ReelCore

extension JobSubmission {
    /// The generation request this submission asks for, before validation against a model.
    /// The images are left to the row's `imageName` and `lastImageName` (`specRow`).
    public var generationRequest: GenerationRequest {
        GenerationRequest(
            prompt: prompt, negativePrompt: negativePrompt, size: size, frames: frames, seconds: seconds, steps: steps,
            guidance: guidance, seed: seed, pngFrames: pngFrames ?? false, style: style, fps: fps,
            interpolate: interpolate)
    }

    /// The submission as a batch row: its request, model, priority and images by name; `fit` is checked here.
    public func specRow() throws(ReelError) -> SpecRow {
        var request = generationRequest
        request.fit = try fit.map { text throws(ReelError) in try ImageFit.parse(text) }
        request.loras = try loraUses()
        request.recipe = recipe
        request.recipeLoRAs = recipeLoRAs.map { RecipeLoRAs(high: $0.high, low: $0.low) }
        return SpecRow(
            request: request, model: model, priority: priority, imageName: image, lastImageName: lastImage)
    }
}

extension JobSubmission {
    /// The LoRAs asked for, each name, scale and expert checked (errors name `loras[i]`).
    func loraUses() throws(ReelError) -> [LoRAUse] {
        var uses: [LoRAUse] = []
        for (index, lora) in (loras ?? []).enumerated() {
            let field = "loras[\(index)]"
            guard LoRAUse.isValidName(lora.name) else {
                throw .invalid(
                    "\(field).name",
                    "\(lora.name.quotedForMessage(limit: 80)) is not a LoRA name (a library file's name without "
                        + ".safetensors: letters, digits, '.', '_' and '-')")
            }
            var use = LoRAUse(name: lora.name, scale: lora.scale ?? 1)
            if let expert = lora.expert {
                guard let value = LoRAExpert(rawValue: expert) else {
                    throw .invalid(
                        "\(field).expert", "the expert must be high, low or both, not \(expert.quotedForMessage())")
                }
                use.expert = value
            }
            try use.checkScale(field: "\(field).scale")
            uses.append(use)
        }
        return uses
    }
}
