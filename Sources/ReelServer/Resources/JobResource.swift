import Foundation
import ReelCore
import ReelStore

/// A job as the API shows it (`"object": "job"`). Absent values are explicit nulls, so every job has every key.
///
/// Times are ISO 8601 strings in UTC with milliseconds (`2025-06-01T12:00:00.123Z`), as every date of the API.
struct JobResource: Encodable {
    struct Progress: Encodable {
        var stage: String
        var step: Int
        var total: Int
        /// The share of this stage done, 0…100, to one decimal.
        var percent: Double
    }

    struct Spec: Encodable {
        var prompt: String
        var negativePrompt: String
        var size: String
        var width: Int
        var height: Int
        var frames: Int
        var fps: Int
        var seconds: Double
        var steps: Int
        var guidance: Double
        var guidance2: Double?
        var seed: UInt64
        var model: String
        var pngFrames: Bool
        var style: String?
        var userPrompt: String?
        var interpolate: Int
        var outputFrames: Int
        var outputFPS: Int
        var requestedSeconds: Double?

        enum CodingKeys: String, CodingKey {
            case prompt, size, width, height, frames, fps, seconds, steps, guidance, seed, model, style, interpolate
            case negativePrompt = "negative_prompt"
            case guidance2 = "guidance_2"
            case pngFrames = "png_frames"
            case userPrompt = "user_prompt"
            case outputFrames = "output_frames"
            case outputFPS = "output_fps"
            case requestedSeconds = "requested_seconds"
        }

        func encode(to encoder: any Encoder) throws {
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
        }
    }

    struct Failure: Encodable {
        var code: String
        var message: String
    }

    struct Outputs: Encodable {
        var videoURL: String
        var frameCount: Int?
        var secondsPerStage: [String: Double]

        enum CodingKeys: String, CodingKey {
            case videoURL = "video_url"
            case frameCount = "frame_count"
            case secondsPerStage = "seconds_per_stage"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(videoURL, forKey: .videoURL)
            try container.encode(frameCount, forKey: .frameCount)
            try container.encode(secondsPerStage, forKey: .secondsPerStage)
        }
    }

    var id: String
    var object = "job"
    var state: JobState
    var progress: Progress?
    var spec: Spec
    var priority: Int
    var attempts: Int
    var cancelRequested: Bool
    var createdAt: Date
    var startedAt: Date?
    var finishedAt: Date?
    var error: Failure?
    var outputs: Outputs?
    var batchID: String?
    /// The node that ran the latest attempt, where a succeeded job's files are (null until it first starts).
    var node: String?

    enum CodingKeys: String, CodingKey {
        case id, object, state, progress, spec, priority, attempts, error, outputs
        case cancelRequested = "cancel_requested"
        case createdAt = "created_at"
        case startedAt = "started_at"
        case finishedAt = "finished_at"
        case batchID = "batch_id"
        case node
    }

    init(_ job: Job) {
        id = job.id
        state = job.state
        progress = job.state == .running ? job.progress.map(Progress.init) : nil
        let spec = job.spec
        self.spec = Spec(
            prompt: spec.prompt, negativePrompt: spec.negativePrompt, size: spec.size, width: spec.width,
            height: spec.height, frames: spec.frames, fps: spec.fps, seconds: spec.seconds, steps: spec.steps,
            guidance: spec.guidance, guidance2: spec.guidance2, seed: spec.seed, model: spec.model,
            pngFrames: spec.pngFrames, style: spec.style, userPrompt: spec.userPrompt, interpolate: spec.interpolate ?? 1,
            outputFrames: spec.outputFrames, outputFPS: spec.outputFPS, requestedSeconds: spec.requestedSeconds)
        priority = job.priority
        attempts = job.attempts
        cancelRequested = job.cancelRequested
        createdAt = job.createdAt
        startedAt = job.startedAt
        finishedAt = job.finishedAt
        // A retried job keeps its last error while it is queued again; only a failed job reports one.
        if job.state == .failed {
            error = Failure(code: job.errorCode ?? "failed", message: job.errorMessage ?? "the job failed")
        }
        if job.state == .succeeded, let outputs = job.outputs {
            self.outputs = Outputs(
                videoURL: "/v1/jobs/\(job.id)/video",
                frameCount: outputs.framesDirectory == nil ? nil : outputs.frameCount,
                secondsPerStage: outputs.secondsPerStage)
        }
        batchID = job.batchID
        node = job.node
    }

    func encode(to encoder: any Encoder) throws {
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

extension JobResource.Progress {
    init(_ progress: JobProgress) {
        stage = progress.stage
        step = progress.step
        total = progress.total
        percent = progress.total > 0 ? (Double(progress.step) / Double(progress.total) * 1000).rounded() / 10 : 0
    }
}
