import Foundation
import ReelCore

/// A job as the API shows it (`"object": "job"`): the answer of `POST /v1/jobs`, `GET /v1/jobs/{id}` and
/// `DELETE /v1/jobs/{id}`, and each entry of a `JobPage`. Absent values are explicit nulls, so every job has every
/// key.
///
/// Times are ISO 8601 strings in UTC with milliseconds (`2025-06-01T12:00:00.123Z`), as every date of the API.
public struct JobResource: Sendable, Equatable, Codable {
    /// How far a running job has got in its current stage.
    public struct Progress: Sendable, Equatable, Codable {
        public var stage: String
        public var step: Int
        public var total: Int
        /// The share of this stage done, 0…100, to one decimal.
        public var percent: Double

        public init(stage: String, step: Int, total: Int, percent: Double) {
            self.stage = stage
            self.step = step
            self.total = total
            self.percent = percent
        }
    }

    /// The validated, concrete spec the job runs with: every default filled in.
    public struct Spec: Sendable, Equatable, Codable {
        public var prompt: String
        public var negativePrompt: String
        public var size: String
        public var width: Int
        public var height: Int
        public var frames: Int
        public var fps: Int
        public var seconds: Double
        public var steps: Int
        public var guidance: Double
        public var guidance2: Double?
        /// 0…2^63−1, exactly as submitted or as the server drew it.
        public var seed: UInt64
        public var model: String
        public var pngFrames: Bool
        public var style: String?
        /// The prompt as submitted, when a style rewrote it into `prompt`.
        public var userPrompt: String?
        public var interpolate: Int
        public var outputFrames: Int
        public var outputFPS: Int
        /// The duration asked for, when it was given in seconds rather than frames.
        public var requestedSeconds: Double?
        /// The ids of the images the video starts and ends from (`img_…`), and how they were fitted; null for none.
        public var image: String?
        public var lastImage: String?
        public var fit: String?
        /// The LoRAs applied, in order (an empty list for none), and the recipe the job was made with.
        public var loras: [AppliedLoRA]?
        public var recipe: String?

        public init(
            prompt: String, negativePrompt: String, size: String, width: Int, height: Int, frames: Int, fps: Int,
            seconds: Double, steps: Int, guidance: Double, guidance2: Double?, seed: UInt64, model: String,
            pngFrames: Bool, style: String?, userPrompt: String?, interpolate: Int, outputFrames: Int, outputFPS: Int,
            requestedSeconds: Double?, image: String? = nil, lastImage: String? = nil, fit: String? = nil,
            loras: [AppliedLoRA]? = nil, recipe: String? = nil
        ) {
            self.loras = loras
            self.recipe = recipe
            self.image = image
            self.lastImage = lastImage
            self.fit = fit
            self.prompt = prompt
            self.negativePrompt = negativePrompt
            self.size = size
            self.width = width
            self.height = height
            self.frames = frames
            self.fps = fps
            self.seconds = seconds
            self.steps = steps
            self.guidance = guidance
            self.guidance2 = guidance2
            self.seed = seed
            self.model = model
            self.pngFrames = pngFrames
            self.style = style
            self.userPrompt = userPrompt
            self.interpolate = interpolate
            self.outputFrames = outputFrames
            self.outputFPS = outputFPS
            self.requestedSeconds = requestedSeconds
        }

        enum CodingKeys: String, CodingKey {
            case prompt, size, width, height, frames, fps, seconds, steps, guidance, seed, model, style, interpolate
            case negativePrompt = "negative_prompt"
            case guidance2 = "guidance_2"
            case pngFrames = "png_frames"
            case userPrompt = "user_prompt"
            case outputFrames = "output_frames"
            case outputFPS = "output_fps"
            case requestedSeconds = "requested_seconds"
            case image, fit, loras, recipe
            case lastImage = "last_image"
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(prompt, forKey: .prompt)
            try container.encode(negativePrompt, forKey: .negativePrompt)
            try container.encode(size, forKey: .size)
            try container.encode(width, forKey: .width)
            try container.encode(height, forKey: .height)
            try container.encode(frames, forKey: .frames)
            try container.encode(fps, forKey: .fps)
            try container.encode(seconds, forKey: .seconds)
            try container.encode(steps, forKey: .steps)
            try container.encode(guidance, forKey: .guidance)
            try container.encode(guidance2, forKey: .guidance2)
            try container.encode(seed, forKey: .seed)
            try container.encode(model, forKey: .model)
            try container.encode(pngFrames, forKey: .pngFrames)
            try container.encode(style, forKey: .style)
            try container.encode(userPrompt, forKey: .userPrompt)
            try container.encode(interpolate, forKey: .interpolate)
            try container.encode(outputFrames, forKey: .outputFrames)
            try container.encode(outputFPS, forKey: .outputFPS)
            try container.encode(requestedSeconds, forKey: .requestedSeconds)
            try container.encode(image, forKey: .image)
            try container.encode(lastImage, forKey: .lastImage)
            try container.encode(fit, forKey: .fit)
            try container.encode(loras ?? [], forKey: .loras)
            try container.encode(recipe, forKey: .recipe)
        }
    }

    /// A LoRA a job applies: its library name, the SHA-256 of the file, its scale and its expert.
    public struct AppliedLoRA: Sendable, Equatable, Codable {
        public var name: String
        public var sha256: String
        public var scale: Double
        /// `high`, `low` or `both`.
        public var expert: String

        public init(name: String, sha256: String, scale: Double, expert: String) {
            self.name = name
            self.sha256 = sha256
            self.scale = scale
            self.expert = expert
        }
    }

    /// Why a failed job failed.
    public struct Failure: Sendable, Equatable, Codable {
        public var code: String
        public var message: String

        public init(code: String, message: String) {
            self.code = code
            self.message = message
        }
    }

    /// What a succeeded job made: where to fetch its video, how many PNG frames it kept, how long each stage took.
    public struct Outputs: Sendable, Equatable, Codable {
        public var videoURL: String
        /// The number of PNG frames kept (`png_frames`); null when none were.
        public var frameCount: Int?
        public var secondsPerStage: [String: Double]

        public init(videoURL: String, frameCount: Int?, secondsPerStage: [String: Double]) {
            self.videoURL = videoURL
            self.frameCount = frameCount
            self.secondsPerStage = secondsPerStage
        }

        enum CodingKeys: String, CodingKey {
            case videoURL = "video_url"
            case frameCount = "frame_count"
            case secondsPerStage = "seconds_per_stage"
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(videoURL, forKey: .videoURL)
            try container.encode(frameCount, forKey: .frameCount)
            try container.encode(secondsPerStage, forKey: .secondsPerStage)
        }
    }

    public var id: String
    /// Always `job`.
    public var object = "job"
    public var state: JobState
    /// Set only while the job runs.
    public var progress: Progress?
    public var spec: Spec
    public var priority: Int
    public var attempts: Int
    public var cancelRequested: Bool
    public var createdAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
    /// Set only on a failed job.
    public var error: Failure?
    /// Set only on a succeeded job.
    public var outputs: Outputs?
    public var batchID: String?
    /// The node that ran the latest attempt, where a succeeded job's files are (null until it first starts).
    public var node: String?

    public init(
        id: String, state: JobState, progress: Progress?, spec: Spec, priority: Int, attempts: Int,
        cancelRequested: Bool, createdAt: Date, startedAt: Date?, finishedAt: Date?, error: Failure?,
        outputs: Outputs?, batchID: String?, node: String?
    ) {
        self.id = id
        self.state = state
        self.progress = progress
        self.spec = spec
        self.priority = priority
        self.attempts = attempts
        self.cancelRequested = cancelRequested
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.error = error
        self.outputs = outputs
        self.batchID = batchID
        self.node = node
    }

    enum CodingKeys: String, CodingKey {
        case id, object, state, progress, spec, priority, attempts, error, outputs
        case cancelRequested = "cancel_requested"
        case createdAt = "created_at"
        case startedAt = "started_at"
        case finishedAt = "finished_at"
        case batchID = "batch_id"
        case node
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(object, forKey: .object)
        try container.encode(state, forKey: .state)
        try container.encode(progress, forKey: .progress)
        try container.encode(spec, forKey: .spec)
        try container.encode(priority, forKey: .priority)
        try container.encode(attempts, forKey: .attempts)
        try container.encode(cancelRequested, forKey: .cancelRequested)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(startedAt, forKey: .startedAt)
        try container.encode(finishedAt, forKey: .finishedAt)
        try container.encode(error, forKey: .error)
        try container.encode(outputs, forKey: .outputs)
        try container.encode(batchID, forKey: .batchID)
        try container.encode(node, forKey: .node)
    }
}
