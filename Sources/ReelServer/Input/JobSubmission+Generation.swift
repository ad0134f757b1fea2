import ReelAPI
import ReelCore

extension JobSubmission {
    /// The generation request this submission asks for, before validation against a model.
    public var generationRequest: GenerationRequest {
        GenerationRequest(
            prompt: prompt, negativePrompt: negativePrompt, size: size, frames: frames, seconds: seconds, steps: steps,
            guidance: guidance, seed: seed, pngFrames: pngFrames ?? false, style: style, fps: fps,
            interpolate: interpolate)
    }
}
