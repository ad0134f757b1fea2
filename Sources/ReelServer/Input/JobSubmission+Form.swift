import ReelAPI
import ReelCore
import ReelStore

extension JobSubmission {
    /// A `multipart/form-data` submission: the fields as text, read with the batch CSV's grammar (`SpecFields`), and
    /// `image` and `last_image` as file parts, stored on arrival in this node's files (`ImageStore`) and named by
    /// their ids (the submission then puts them into the job store, `JobService.resolve`). A field given
    /// twice, a file part under another name, or text that is not UTF-8 is an error naming the field.
    init(form parts: [Multipart.Part], images: ImageStore) throws(ReelError) {
        var fields: [String: String] = [:]
        for part in parts {
            guard fields[part.name] == nil else {
                throw .invalid(
                    String(part.name.unicodeScalars.prefix(60)),
                    "\(part.name.quotedForMessage(limit: 60)) is given more than once")
            }
            fields[part.name] = try part.formValue(fileFields: ["image", "last_image"], images: images)
        }
        let row = try SpecFields.row(from: fields)
        let request = row.request
        self.init(
            prompt: request.prompt, negativePrompt: request.negativePrompt, style: request.style, size: request.size,
            seconds: request.seconds, frames: request.frames, steps: request.steps, guidance: request.guidance,
            seed: request.seed, model: row.model, pngFrames: fields["png_frames"] == nil ? nil : request.pngFrames,
            priority: row.priority, fps: request.fps, interpolate: request.interpolate, image: row.imageName,
            lastImage: row.lastImageName, fit: request.fit?.rawValue,
            loras: request.loras.isEmpty
                ? nil
                : request.loras.map(LoRARequest.init),
            recipe: request.recipe, recipeLoRAs: request.recipeLoRAs.map(RecipeLoRAPair.init))
    }
}
