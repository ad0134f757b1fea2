import Foundation

/// Turns a `GenerationRequest` into a `GenerationSpec` for one model, or explains what is wrong.
///
/// Every message names the field and, where a nearby value would be valid, gives it.
public enum Validation {
    public static func resolve(
        _ request: GenerationRequest, model: ModelInfo, limits: GenerationLimits = .standard,
        styles: StyleLibrary = .builtIn,
        randomSeed: () -> UInt64 = { UInt64.random(in: 0...UInt64(Int64.max)) }
    ) throws(ReelError) -> GenerationSpec {
        let userPrompt = (request.prompt ?? "").trimmingWhitespace
        guard !userPrompt.isEmpty else { throw .invalid("prompt", "the prompt is empty; describe the video to generate") }
        // The limits bound what the user wrote; a style adds a fixed template around it.
        guard userPrompt.count <= limits.maxPromptCharacters else {
            throw .invalid(
                "prompt", "the prompt has \(userPrompt.count) characters; the limit is \(limits.maxPromptCharacters)")
        }
        let userNegative = request.negativePrompt ?? ""
        guard userNegative.count <= limits.maxPromptCharacters else {
            throw .invalid(
                "negative_prompt",
                "the negative prompt has \(userNegative.count) characters; the limit is \(limits.maxPromptCharacters)")
        }
        var prompt = userPrompt
        var styleName: String?
        var negativeFromStyle: String?
        if let name = request.style?.trimmingWhitespace, !name.isEmpty {
            let style = try styles.style(named: name)
            (prompt, negativeFromStyle) = style.apply(prompt: userPrompt, negativePrompt: request.negativePrompt ?? "")
            styleName = style.name
        }
        let negative = negativeFromStyle ?? request.negativePrompt ?? ""

        var width = model.defaults.width
        var height = model.defaults.height
        if let size = request.size?.trimmingWhitespace, !size.isEmpty {
            if let preset = VideoPresets.preset(named: size, for: model.architecture) {
                (width, height) = (preset.width, preset.height)
            } else if size.first?.isLetter == true {
                let names = VideoPresets.presets(for: model.architecture).map(\.name).joined(separator: ", ")
                throw .invalid(
                    "size", "'\(size)' is not a size preset of \(model.architecture.rawValue) (\(names)) nor WIDTHxHEIGHT")
            } else {
                (width, height) = try parseSize(size, stride: model.spatialStride, architecture: model.architecture)
            }
        }
        guard width * height <= limits.maxPixelsPerFrame else {
            throw .invalid(
                "size", "\(width)x\(height) has \(width * height) pixels per frame; the limit is \(limits.maxPixelsPerFrame)")
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
                    "\(requested) frames is not of the form 4n+1; the nearest valid count is \(nearestFrames(requested))")
            }
            frames = requested
        } else if let seconds = request.seconds {
            guard seconds.isFinite, seconds > 0 else {
                throw .invalid("seconds", "seconds must be a positive number")
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

        let steps = request.steps ?? model.defaults.steps
        guard (1...limits.maxSteps).contains(steps) else {
            throw .invalid("steps", "steps must be between 1 and \(limits.maxSteps), not \(steps)")
        }
        let guidance = request.guidance ?? model.defaults.guidance
        guard guidance.isFinite, (0...50).contains(guidance) else {
            throw .invalid("guidance", "guidance must be a number between 0 and 50")
        }
        let seed = request.seed ?? randomSeed()
        guard seed <= UInt64(Int64.max) else {
            throw .invalid("seed", "the seed must be between 0 and \(Int64.max)")
        }
        return GenerationSpec(
            prompt: prompt, negativePrompt: negative, width: width, height: height, frames: frames, fps: fps,
            steps: steps, guidance: guidance, guidance2: request.guidance == nil ? model.defaults.guidance2 : nil,
            seed: seed, pngFrames: request.pngFrames, model: model.name, style: styleName,
            userPrompt: styleName == nil ? nil : userPrompt, interpolate: interpolate == 1 ? nil : interpolate,
            requestedSeconds: request.frames == nil ? request.seconds : nil)
    }

    /// Parses "WxH" and checks both sides are positive multiples of the stride.
    public static func parseSize(_ text: String, stride: Int, architecture: Architecture) throws(ReelError) -> (Int, Int) {
        let parts = text.lowercased().split(separator: "x", omittingEmptySubsequences: false)
        guard parts.count == 2, let width = Int(parts[0].trimmingWhitespace), let height = Int(parts[1].trimmingWhitespace)
        else {
            throw .invalid("size", "size '\(text)' is not of the form WIDTHxHEIGHT, for example 1280x704")
        }
        guard width > 0, height > 0 else { throw .invalid("size", "size '\(text)' must have a positive width and height") }
        guard width % stride == 0, height % stride == 0 else {
            let nearest = "\(nearestMultiple(width, of: stride))x\(nearestMultiple(height, of: stride))"
            throw .invalid(
                "size",
                "size \(width)x\(height) is not a multiple of \(stride) in both sides, as \(architecture.rawValue) "
                    + "needs; the nearest valid size is \(nearest)")
        }
        return (width, height)
    }

    /// The number of frames (4n+1) whose playing time (frames / fps) is closest to a duration:
    /// 5 s at 24 fps is 121 frames (5.04 s), at 16 fps 81 frames (5.06 s).
    public static func framesFor(seconds: Double, fps: Int) -> Int {
        let intervals = ((seconds * Double(fps) - 1) / 4).rounded()
        return Int(max(intervals, 0)) * 4 + 1
    }

    public static func nearestFrames(_ frames: Int) -> Int {
        max(1, Int((Double(frames - 1) / 4).rounded()) * 4 + 1)
    }

    /// The multiple of `stride` nearest to `value`; a tie goes to the smaller, cheaper size.
    public static func nearestMultiple(_ value: Int, of stride: Int) -> Int {
        max(stride, (value + (stride - 1) / 2) / stride * stride)
    }
}

extension StringProtocol {
    var trimmingWhitespace: String {
        String(self.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}
