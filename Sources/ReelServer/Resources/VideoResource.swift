import Foundation
import ReelCore
import ReelStore

/// A job as OpenAI's videos API shows it (`"object": "video"`), so that the official SDKs parse it as `Video`.
///
/// The id is the job's id, so `/v1/videos/{id}` and `/v1/jobs/{id}` are one resource. Times are Unix seconds.
/// Reel's states map as queued → `queued`, running → `in_progress`, succeeded → `completed`, and failed or
/// cancelled → `failed` (a cancelled job's error code is `cancelled`).
struct VideoResource: Encodable {
    struct Failure: Encodable {
        var code: String
        var message: String
    }

    var id: String
    var object = "video"
    var status: String
    var progress: Int
    var createdAt: Int
    var completedAt: Int?
    var expiresAt: Int?
    var model: String
    var prompt: String
    var seconds: String
    var size: String
    var error: Failure?
    var remixedFromVideoID: String?

    enum CodingKeys: String, CodingKey {
        case id, object, status, progress, model, prompt, seconds, size, error
        case createdAt = "created_at"
        case completedAt = "completed_at"
        case expiresAt = "expires_at"
        case remixedFromVideoID = "remixed_from_video_id"
    }

    init(_ job: Job) {
        id = job.id
        switch job.state {
        case .queued: status = "queued"
        case .running: status = "in_progress"
        case .succeeded: status = "completed"
        case .failed, .cancelled: status = "failed"
        }
        progress = Self.percent(job)
        createdAt = Int(job.createdAt.timeIntervalSince1970)
        completedAt = job.state.isTerminal ? job.finishedAt.map { Int($0.timeIntervalSince1970) } : nil
        // Reel keeps a video until it is deleted.
        expiresAt = nil
        model = job.spec.model
        prompt = job.spec.userPrompt ?? job.spec.prompt
        seconds = Self.seconds(job.spec)
        size = job.spec.size
        switch job.state {
        case .failed:
            error = Failure(code: job.errorCode ?? "failed", message: job.errorMessage ?? "the job failed")
        case .cancelled:
            error = Failure(code: "cancelled", message: "the video was cancelled before it was finished")
        default:
            error = nil
        }
        remixedFromVideoID = nil
    }

    /// The duration as a string, as the SDK's `seconds`: what was asked for when it was given in seconds (the
    /// frames are the nearest 4n+1 to it), otherwise the frames' playing time, without trailing zeros.
    static func seconds(_ spec: GenerationSpec) -> String {
        let value = spec.requestedSeconds ?? spec.seconds
        var text = String(format: "%.2f", value)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }

    /// 0…100 over the whole job: text encoding up to 5, denoising up to 90, decoding up to 95, encoding up to 99;
    /// 100 only once it has succeeded. A job that did not succeed keeps 0.
    static func percent(_ job: Job) -> Int {
        switch job.state {
        case .succeeded: return 100
        case .running:
            guard let progress = job.progress else { return 0 }
            let share = progress.total > 0 ? min(1, max(0, Double(progress.step) / Double(progress.total))) : 0
            let (start, end): (Double, Double) =
                switch progress.stage {
                case "text_encoding": (0, 4)
                case "image_encoding": (4, 5)
                case "denoising": (5, 90)
                case "vae_decode": (90, 95)
                case "encoding": (95, 99)
                default: (0, 0)
                }
            return Int(start + (end - start) * share)
        default: return 0
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(object, forKey: .object)
        try container.encode(status, forKey: .status)
        try container.encode(progress, forKey: .progress)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(completedAt, forKey: .completedAt)
        try container.encode(expiresAt, forKey: .expiresAt)
        try container.encode(model, forKey: .model)
        try container.encode(prompt, forKey: .prompt)
        try container.encode(seconds, forKey: .seconds)
        try container.encode(size, forKey: .size)
        try container.encode(error, forKey: .error)
        try container.encode(remixedFromVideoID, forKey: .remixedFromVideoID)
    }
}

/// `{"object": "list", "data": [...], "first_id", "last_id", "has_more"}`: a page of videos as the SDKs page it
/// (the next page is `?after=<last_id>`).
struct VideoPage: Encodable {
    var object = "list"
    var data: [VideoResource]
    var hasMore: Bool

    enum CodingKeys: String, CodingKey {
        case object, data
        case firstID = "first_id"
        case lastID = "last_id"
        case hasMore = "has_more"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(object, forKey: .object)
        try container.encode(data, forKey: .data)
        try container.encode(data.first?.id, forKey: .firstID)
        try container.encode(data.last?.id, forKey: .lastID)
        try container.encode(hasMore, forKey: .hasMore)
    }
}

/// The answer to `DELETE /v1/videos/{id}`.
struct VideoDeleted: Encodable {
    var id: String
    var object = "video.deleted"
    var deleted: Bool
}
