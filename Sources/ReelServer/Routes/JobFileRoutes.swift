import Foundation
import Hummingbird
import ReelCore
import ReelStore

/// `GET /v1/jobs/{id}/video`, `GET /v1/jobs/{id}/metadata` (its job.json) and `GET /v1/jobs/{id}/frames/{n}.png`:
/// a succeeded job's files, streamed from disk.
///
/// Paths come only from the job's stored outputs; the URL contributes a job id (a store key) and a frame number
/// (parsed as a positive integer and formatted again), never a piece of a path. A job of another tenant is a 404.
///
/// In a cluster, a job's files are on the disk of the node that made it (`job.node`). A node that does not find them
/// under its own output directory (the nodes share none) answers 307 with the same path on the owning node's
/// advertised URL, as the cluster directory lists it; the client repeats the request there, with its API key.
struct JobFileRoutes {
    let service: JobService
    let fileIO = FileIO()

    func register(on router: Router<BasicRequestContext>) {
        router.get("/v1/jobs/:id/video") { request, context in
            let job = try await service.job(id: context.parameters.require("id"))
            let outputs = try succeededOutputs(job, what: "video")
            return try await file(
                outputs.video, of: job, outputs, contentType: "video/mp4", filename: "\(job.id).mp4",
                request: request, context: context)
        }
        router.get("/v1/jobs/:id/metadata") { request, context in
            let job = try await service.job(id: context.parameters.require("id"))
            let outputs = try succeededOutputs(job, what: "metadata")
            return try await file(
                outputs.metadata, of: job, outputs, contentType: "application/json", filename: "\(job.id).json",
                request: request, context: context)
        }
        router.get("/v1/jobs/:id/frames/{frame}.png") { request, context in
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
                    .notFound,
                    "job \(job.id) has no frame \(text.quotedForMessage(limit: 20)); its frames are 1.png to \(count).png"
                )
            }
            let name = JobOutputs.frameName(number)
            return try await file(
                directory + "/" + name + ".png", of: job, outputs, contentType: "image/png",
                filename: "\(job.id)-\(name).png", request: request, context: context)
        }
    }

    /// A frame number as the URL gives it: decimal digits only, 1 or more.
    static func frameNumber(_ text: String) -> Int? {
        guard !text.isEmpty, text.count <= 9, text.allSatisfy({ $0.isASCII && $0.isNumber }),
            let number = Int(text), number >= 1
        else { return nil }
        return number
    }

    private func succeededOutputs(_ job: Job, what: String) throws(ReelError) -> JobOutputs {
        guard job.state == .succeeded, let outputs = job.outputs else {
            throw ReelError(
                .notFound, "job \(job.id) is \(job.state.rawValue); its \(what) exist once it has succeeded")
        }
        return outputs
    }

    /// One of the job's files; see `JobFileResponse` for why a link or a path outside its outputs is a 404. When the
    /// file is not on this node's disk and another node made it, a redirect to that node.
    private func file(
        _ path: String, of job: Job, _ outputs: JobOutputs, contentType: String, filename: String, request: Request,
        context: BasicRequestContext
    ) async throws -> Response {
        let configuration = service.scheduler.configuration
        let ownOutputs = configuration.outputRoot ?? configuration.dataDirectory + "/outputs"
        if let owner = job.node, owner != configuration.node, !JobFileResponse.isRegularFile(path, inside: ownOutputs),
            let directory = service.store as? any ClusterDirectory
        {
            guard let node = try await directory.nodes().first(where: { $0.name == owner }) else {
                throw ReelError(
                    .notFound,
                    "job \(job.id)'s files are on node \(owner), which is not running; start it again, or give the "
                        + "nodes one shared --output-dir")
            }
            let base = node.url.hasSuffix("/") ? String(node.url.dropLast()) : node.url
            return Response(
                status: .temporaryRedirect, headers: [.location: base + request.uri.description, .contentLength: "0"])
        }
        return try await JobFileResponse.make(
            path: path, directory: outputs.directory, contentType: contentType, filename: filename, fileIO: fileIO,
            context: context)
    }
}
