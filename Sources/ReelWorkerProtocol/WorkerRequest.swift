/// A request from Reel to an engine worker: one JSON object on one line of the worker's stdin.
public enum WorkerRequest: Sendable, Equatable {
    case generate(Generate)
    /// Encode this prompt now, on the text encoder's device, and keep the embedding for a `generate` that follows
    /// with the same prompts. Sent by `split` slots while the other device still denoises the previous job. No reply.
    case prepare(Prepare)
    case cancel(job: String)
    case ping
    case shutdown

    /// Generate one video into `outDir`.
    public struct Generate: Sendable, Equatable, Codable {
        public var job: String
        public var prompt: String
        public var negativePrompt: String
        public var width: Int
        public var height: Int
        public var frames: Int
        public var steps: Int
        public var guidance: Double
        public var guidance2: Double?
        public var seed: UInt64
        public var pngFrames: Bool
        public var outDir: String
        public var fps: Int?
        public var memorySaving: Bool?
        /// 2 or 4: multiply the frame rate by motion-compensated interpolation before encoding.
        public var interpolate: Int?
        /// Save a resumable checkpoint every N denoising steps into `outDir`.
        public var checkpointEvery: Int?
        /// Extra fields copied into `job.json`.
        public var metadata: [String: JSONValue]?
        /// Test-only fault injection; the worker honours it only with REEL_ENGINE_ALLOW_FAULTS=1.
        public var debug: [String: JSONValue]?
        /// The picture the video starts from (image-to-video), and the one it ends on (I2V-A14B only).
        public var image: ImageFile?
        public var lastImage: ImageFile?
        /// How the images are fitted to width x height: `cover` (the default), `contain` or `stretch`.
        public var fit: String?
        /// LoRAs to apply for this job, in order; nil or empty for the base model.
        public var loras: [LoRA]?
        /// The sampler when not the model's own scheduler (the 4-step recipe's step-distilled one).
        public var sampler: Sampler?
        /// The recipe the job was made with, recorded in `job.json` and the checkpoint identity.
        public var recipe: String?

        public init(
            job: String, prompt: String, negativePrompt: String, width: Int, height: Int, frames: Int, steps: Int,
            guidance: Double, guidance2: Double? = nil, seed: UInt64, pngFrames: Bool, outDir: String,
            fps: Int? = nil, memorySaving: Bool? = nil, interpolate: Int? = nil, checkpointEvery: Int? = nil,
            metadata: [String: JSONValue]? = nil, debug: [String: JSONValue]? = nil, image: ImageFile? = nil,
            lastImage: ImageFile? = nil, fit: String? = nil, loras: [LoRA]? = nil, sampler: Sampler? = nil,
            recipe: String? = nil
        ) {
            self.loras = loras
            self.sampler = sampler
            self.recipe = recipe
            self.image = image
            self.lastImage = lastImage
            self.fit = fit
            self.interpolate = interpolate
            self.checkpointEvery = checkpointEvery
            self.job = job
            self.prompt = prompt
            self.negativePrompt = negativePrompt
            self.width = width
            self.height = height
            self.frames = frames
            self.steps = steps
            self.guidance = guidance
            self.guidance2 = guidance2
            self.seed = seed
            self.pngFrames = pngFrames
            self.outDir = outDir
            self.fps = fps
            self.memorySaving = memorySaving
            self.metadata = metadata
            self.debug = debug
        }

        enum CodingKeys: String, CodingKey {
            case job, prompt, width, height, frames, steps, guidance, seed, fps, metadata, debug, interpolate, image,
                fit, loras, sampler, recipe
            case lastImage = "last_image"
            case negativePrompt = "negative_prompt"
            case guidance2 = "guidance_2"
            case pngFrames = "png_frames"
            case outDir = "out_dir"
            case memorySaving = "memory_saving"
            case checkpointEvery = "checkpoint_every"
        }
    }
}

extension WorkerRequest {
    /// An image file the worker reads; it checks the bytes against `sha256` before using them.
    public struct ImageFile: Sendable, Equatable, Codable {
        /// Absolute.
        public var path: String
        /// Lowercase hex.
        public var sha256: String

        public init(path: String, sha256: String) {
            self.path = path
            self.sha256 = sha256
        }
    }

    /// A LoRA file the worker applies; it checks the bytes against `sha256` before using them.
    public struct LoRA: Sendable, Equatable, Codable {
        public var name: String
        /// Absolute.
        public var path: String
        /// Lowercase hex.
        public var sha256: String
        public var scale: Double
        /// `high`, `low` or `both`.
        public var expert: String

        public init(name: String, path: String, sha256: String, scale: Double, expert: String) {
            self.name = name
            self.path = path
            self.sha256 = sha256
            self.scale = scale
            self.expert = expert
        }
    }

    /// A sampler other than the model's scheduler: `step_distill` or `flow_euler` with its flow shift and its
    /// steps on the 1000-step scale, one per denoising step; `flow_unipc` with its shift; and the step at which the
    /// low-noise expert takes over, when by step rather than by the model's boundary.
    public struct Sampler: Sendable, Equatable, Codable {
        public var kind: String
        public var shift: Double
        public var denoisingSteps: [Int]
        public var switchStep: Int?

        public init(kind: String, shift: Double, denoisingSteps: [Int], switchStep: Int? = nil) {
            self.kind = kind
            self.shift = shift
            self.denoisingSteps = denoisingSteps
            self.switchStep = switchStep
        }

        enum CodingKeys: String, CodingKey {
            case kind, shift
            case denoisingSteps = "denoising_steps"
            case switchStep = "switch_step"
        }
    }

    /// The prompts of a job that is likely to come next.
    public struct Prepare: Sendable, Equatable, Codable {
        public var prompt: String
        public var negativePrompt: String

        public init(prompt: String, negativePrompt: String) {
            self.prompt = prompt
            self.negativePrompt = negativePrompt
        }

        enum CodingKeys: String, CodingKey {
            case prompt
            case negativePrompt = "negative_prompt"
        }
    }
}

extension WorkerRequest: Codable {
    private enum TypeKey: String, CodingKey { case type, job }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: TypeKey.self)
        let type = try container.decode(String.self, forKey: .type)
        switch type {
        case "generate": self = .generate(try Generate(from: decoder))
        case "prepare": self = .prepare(try Prepare(from: decoder))
        case "cancel": self = .cancel(job: try container.decode(String.self, forKey: .job))
        case "ping": self = .ping
        case "shutdown": self = .shutdown
        default:
            throw DecodingError.dataCorruptedError(
                forKey: .type, in: container, debugDescription: "unknown request type '\(type)'")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: TypeKey.self)
        switch self {
        case .generate(let generate):
            try container.encode("generate", forKey: .type)
            try generate.encode(to: encoder)
        case .prepare(let prepare):
            try container.encode("prepare", forKey: .type)
            try prepare.encode(to: encoder)
        case .cancel(let job):
            try container.encode("cancel", forKey: .type)
            try container.encode(job, forKey: .job)
        case .ping:
            try container.encode("ping", forKey: .type)
        case .shutdown:
            try container.encode("shutdown", forKey: .type)
        }
    }
}
