/// An event from an engine worker: one JSON object on one line of the worker's stdout.
public enum WorkerEvent: Sendable, Equatable {
    case ready(Ready)
    case progress(Progress)
    case result(Result)
    case error(Failure)
    /// A retried job continues from a checkpoint instead of starting over.
    case resumed(Resumed)
    /// A checkpoint was found but not used (it belongs to another job, or is damaged); the job starts over.
    case checkpointRejected(CheckpointRejected)
    case pong
    /// An event type this version does not know; newer workers may send it and older parents ignore it.
    case unknown(String)

    /// The job an event is about, when it is about one.
    public var job: String? {
        switch self {
        case .progress(let progress): progress.job
        case .result(let result): result.job
        case .error(let failure): failure.job
        case .resumed(let resumed): resumed.job
        case .checkpointRejected(let rejected): rejected.job
        case .ready, .pong, .unknown: nil
        }
    }

    /// Sent once, when the model is loaded.
    public struct Ready: Sendable, Equatable, Codable {
        public var `protocol`: Int
        public var device: String
        public var model: String
        public var architecture: String
        public var dtype: String
        public var freeMemoryBytes: Int64?
        public var totalMemoryBytes: Int64?
        public var fps: Int
        public var spatialStride: Int
        public var temporalStride: Int
        public var engineVersion: String?
        public var pid: Int32?
        public var randomWeights: Bool?
        public var loadSeconds: Double?
        public var defaults: JSONValue?

        public init(
            protocol: Int, device: String, model: String, architecture: String, dtype: String,
            freeMemoryBytes: Int64? = nil, totalMemoryBytes: Int64? = nil, fps: Int, spatialStride: Int,
            temporalStride: Int, engineVersion: String? = nil, pid: Int32? = nil, randomWeights: Bool? = nil,
            loadSeconds: Double? = nil, defaults: JSONValue? = nil
        ) {
            self.protocol = `protocol`
            self.device = device
            self.model = model
            self.architecture = architecture
            self.dtype = dtype
            self.freeMemoryBytes = freeMemoryBytes
            self.totalMemoryBytes = totalMemoryBytes
            self.fps = fps
            self.spatialStride = spatialStride
            self.temporalStride = temporalStride
            self.engineVersion = engineVersion
            self.pid = pid
            self.randomWeights = randomWeights
            self.loadSeconds = loadSeconds
            self.defaults = defaults
        }

        enum CodingKeys: String, CodingKey {
            case `protocol`, device, model, architecture, dtype, fps, pid, defaults
            case freeMemoryBytes = "free_memory_bytes"
            case totalMemoryBytes = "total_memory_bytes"
            case spatialStride = "spatial_stride"
            case temporalStride = "temporal_stride"
            case engineVersion = "engine_version"
            case randomWeights = "random_weights"
            case loadSeconds = "load_seconds"
        }
    }

    /// A pipeline stage, named as on the wire.
    public struct Stage: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let textEncoding = Stage(rawValue: "text_encoding")
        /// The first and last images into latents (image-to-video jobs only), between text encoding and denoising.
        public static let imageEncoding = Stage(rawValue: "image_encoding")
        public static let denoising = Stage(rawValue: "denoising")
        public static let vaeDecode = Stage(rawValue: "vae_decode")
        public static let encoding = Stage(rawValue: "encoding")
    }

    /// Sent at every denoising step and at stage changes; also the worker's heartbeat.
    public struct Progress: Sendable, Equatable, Codable {
        public var job: String
        public var stage: Stage
        public var step: Int
        public var total: Int

        public init(job: String, stage: Stage, step: Int, total: Int) {
            self.job = job
            self.stage = stage
            self.step = step
            self.total = total
        }
    }

    /// Where a finished job's files are.
    public struct Outputs: Sendable, Equatable, Codable {
        public var dir: String
        public var video: String
        public var metadata: String
        public var framesDir: String?
        public var frameCount: Int?
        public var width: Int?
        public var height: Int?
        public var fps: Double?

        public init(
            dir: String, video: String, metadata: String, framesDir: String? = nil, frameCount: Int? = nil,
            width: Int? = nil, height: Int? = nil, fps: Double? = nil
        ) {
            self.dir = dir
            self.video = video
            self.metadata = metadata
            self.framesDir = framesDir
            self.frameCount = frameCount
            self.width = width
            self.height = height
            self.fps = fps
        }

        enum CodingKeys: String, CodingKey {
            case dir, video, metadata, width, height, fps
            case framesDir = "frames_dir"
            case frameCount = "frame_count"
        }
    }

    /// Seconds spent in each stage of one job.
    public struct StageSeconds: Sendable, Equatable, Codable {
        public var textEncoding: Double
        public var denoising: Double
        public var vaeDecode: Double
        public var encoding: Double
        /// Frame interpolation, when the job asked for it.
        public var interpolating: Double?
        /// Reading and encoding the images, for an image-to-video job.
        public var imageEncoding: Double?
        /// Reading, hashing and converting the job's LoRA files, then putting them into the worker's adapter slots
        /// (on a worker with slots).
        public var loraLoad: Double?
        public var loraSwitch: Double?
        public var total: Double

        public init(
            textEncoding: Double, denoising: Double, vaeDecode: Double, encoding: Double, interpolating: Double? = nil,
            imageEncoding: Double? = nil, total: Double
        ) {
            self.imageEncoding = imageEncoding
            self.textEncoding = textEncoding
            self.denoising = denoising
            self.vaeDecode = vaeDecode
            self.encoding = encoding
            self.interpolating = interpolating
            self.total = total
        }

        enum CodingKeys: String, CodingKey {
            case denoising, encoding, total, interpolating
            case textEncoding = "text_encoding"
            case imageEncoding = "image_encoding"
            case loraSwitch = "lora_switch"
            case loraLoad = "lora_load"
            case vaeDecode = "vae_decode"
        }
    }

    /// Sent once a job's files exist under their final names.
    public struct Result: Sendable, Equatable, Codable {
        public var job: String
        public var outputs: Outputs
        public var seconds: StageSeconds
        public var peakMemoryBytes: Int64?

        public init(job: String, outputs: Outputs, seconds: StageSeconds, peakMemoryBytes: Int64? = nil) {
            self.job = job
            self.outputs = outputs
            self.seconds = seconds
            self.peakMemoryBytes = peakMemoryBytes
        }

        enum CodingKeys: String, CodingKey {
            case job, outputs, seconds
            case peakMemoryBytes = "peak_memory_bytes"
        }
    }

    public struct Resumed: Sendable, Equatable, Codable {
        public var job: String
        public var step: Int
        public var total: Int

        public init(job: String, step: Int, total: Int) {
            self.job = job
            self.step = step
            self.total = total
        }
    }

    public struct CheckpointRejected: Sendable, Equatable, Codable {
        public var job: String
        public var reason: String

        public init(job: String, reason: String) {
            self.job = job
            self.reason = reason
        }
    }

    /// A worker error code, as on the wire.
    public struct ErrorCode: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let badRequest = ErrorCode(rawValue: "bad_request")
        public static let outOfMemory = ErrorCode(rawValue: "out_of_memory")
        public static let modelError = ErrorCode(rawValue: "model_error")
        public static let cancelled = ErrorCode(rawValue: "cancelled")
        public static let `internal` = ErrorCode(rawValue: "internal")
        /// The job's files could not be written: the file system is full (ENOSPC, EDQUOT).
        public static let diskFull = ErrorCode(rawValue: "disk_full")
        /// The job's files could not be written: permission, a read-only or vanished directory, an I/O error.
        public static let outputUnwritable = ErrorCode(rawValue: "output_unwritable")
    }

    /// A failed request or job; `job` is nil when the request had no usable job id or loading failed.
    public struct Failure: Sendable, Equatable, Codable {
        public var job: String?
        public var code: ErrorCode
        public var message: String

        public init(job: String?, code: ErrorCode, message: String) {
            self.job = job
            self.code = code
            self.message = message
        }
    }
}

extension WorkerEvent: Codable {
    private enum EventKey: String, CodingKey { case event }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: EventKey.self)
        let event = try container.decode(String.self, forKey: .event)
        switch event {
        case "ready": self = .ready(try Ready(from: decoder))
        case "progress": self = .progress(try Progress(from: decoder))
        case "result": self = .result(try Result(from: decoder))
        case "error": self = .error(try Failure(from: decoder))
        case "resumed": self = .resumed(try Resumed(from: decoder))
        case "checkpoint_rejected": self = .checkpointRejected(try CheckpointRejected(from: decoder))
        case "pong": self = .pong
        default: self = .unknown(event)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: EventKey.self)
        switch self {
        case .ready(let value):
            try container.encode("ready", forKey: .event)
            try value.encode(to: encoder)
        case .progress(let value):
            try container.encode("progress", forKey: .event)
            try value.encode(to: encoder)
        case .result(let value):
            try container.encode("result", forKey: .event)
            try value.encode(to: encoder)
        case .error(let value):
            try container.encode("error", forKey: .event)
            try value.encode(to: encoder)
        case .resumed(let value):
            try container.encode("resumed", forKey: .event)
            try value.encode(to: encoder)
        case .checkpointRejected(let value):
            try container.encode("checkpoint_rejected", forKey: .event)
            try value.encode(to: encoder)
        case .pong:
            try container.encode("pong", forKey: .event)
        case .unknown(let name):
            try container.encode(name, forKey: .event)
        }
    }
}
