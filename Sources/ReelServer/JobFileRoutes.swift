import Foundation
import Hummingbird
import ReelCore
import ReelStore

/// `GET /v1/jobs/{id}/video`, `GET /v1/jobs/{id}/metadata` (its job.json) and `GET /v1/jobs/{id}/frames/{n}.png`:
/// a succeeded job's files, streamed from disk.
///
/// Paths come only from the job's stored outputs; the URL contributes a job id (a store key) and a frame number
/// (parsed as a positive integer and formatted again), never a piece of a path. A job of another tenant is a 404.
struct JobFileRoutes {
    let service: JobService
    let fileIO = FileIO()

    func register(on router: Router<BasicRequestContext>) {
        router.get("/v1/jobs/:id/video") { _, context in
            let job = try await service.job(id: context.parameters.require("id"))
            let outputs = try succeededOutputs(job, what: "video")
            return try await file(
                outputs.video, of: outputs, contentType: "video/mp4", filename: "\(job.id).mp4", context: context)
        }
        router.get("/v1/jobs/:id/metadata") { _, context in
            let job = try await service.job(id: context.parameters.require("id"))
            let outputs = try succeededOutputs(job, what: "metadata")
            return try await file(
                outputs.metadata, of: outputs, contentType: "application/json", filename: "\(job.id).json",
                context: context)
        }
        router.get("/v1/jobs/:id/frames/{frame}.png") { _, context in
            let job = try await service.job(id: context.parameters.require("id"))
            let outputs = try succeededOutputs(job, what: "frames")
            guard let directory = outputs.framesDirectory else {
                throw ReelError(
                    .notFound, "job \(job.id) kept no PNG frames; submit a job with \"png_frames\": true to get them")
            }
            let text = try context.parameters.require("frame")
            let count = outputs.frameCount ?? job.spec.frames
            guard let number = Self.frameNumber(text), number <= count else {
                throw ReelError(
                    .notFound, "job \(job.id) has no frame '\(text.prefix(20))'; its frames are 1.png to \(count).png")
            }
            let name = Self.padded(number)
            return try await file(
                directory + "/" + name + ".png", of: outputs, contentType: "image/png",
                filename: "\(job.id)-\(name).png", context: context)
        }
    }

    /// A frame number as the URL gives it: decimal digits only, 1 or more.
    static func frameNumber(_ text: String) -> Int? {
        guard !text.isEmpty, text.count <= 9, text.allSatisfy({ $0.isASCII && $0.isNumber }),
            let number = Int(text), number >= 1
        else { return nil }
        return number
    }

    /// The engine's frame file name: the number zero-padded to six digits.
    static func padded(_ number: Int) -> String {
        let digits = String(number)
        return String(repeating: "0", count: max(0, 6 - digits.count)) + digits
    }

    private func succeededOutputs(_ job: Job, what: String) throws(ReelError) -> JobOutputs {
        guard job.state == .succeeded, let outputs = job.outputs else {
            throw ReelError(
                .notFound, "job \(job.id) is \(job.state.rawValue); its \(what) exist once it has succeeded")
        }
        return outputs
    }

    /// One of the job's files; see `JobFileResponse` for why a link or a path outside its outputs is a 404.
    private func file(
        _ path: String, of outputs: JobOutputs, contentType: String, filename: String, context: BasicRequestContext
    ) async throws -> Response {
        try await JobFileResponse.make(
            path: path, directory: outputs.directory, contentType: contentType, filename: filename, fileIO: fileIO,
            context: context)
    }
}
