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
        return SpecRow(
            request: request, model: model, priority: priority, imageName: image, lastImageName: lastImage)
    }
}
