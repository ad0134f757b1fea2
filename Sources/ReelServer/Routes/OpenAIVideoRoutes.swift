import HTTPTypes
import Hummingbird
import ReelAPI
import ReelCore
import ReelStore

/// OpenAI's videos API, as the official SDKs call it (`client.videos.create`, `retrieve`, `list`, `delete`,
/// `download_content`): `POST /v1/videos`, `GET /v1/videos`, `GET|DELETE /v1/videos/{id}` and
/// `GET /v1/videos/{id}/content?variant=video|thumbnail`. A video is a job: the same id works on `/v1/jobs`.
///
/// Errors come in OpenAI's envelope (`OpenAIErrorMiddleware`). `DELETE` cancels a queued or running video; a
/// queued one and a finished one are then deleted for good (row, events and files); a running one stops at its
/// worker's next step, answers `"deleted": false`, and is listed as failed (code `cancelled`) until deleted again.
struct OpenAIVideoRoutes {
    let service: JobService
    let configuration: ReelServerConfiguration
    let fileIO = FileIO()

    /// The page size of `GET /v1/videos` without `limit`, and the largest allowed.
    static let defaultPageSize = 20
    static let maxPageSize = 100

    func register(on router: Router<BasicRequestContext>) {
        router.post("/v1/videos") { request, _ in try await create(request) }
        router.get("/v1/videos") { request, _ in try await list(request) }
        router.get("/v1/videos/:id") { _, context in
            try APIJSON.response(VideoResource(try await service.job(id: context.parameters.require("id"))))
        }
        router.delete("/v1/videos/:id") { _, context in
            switch try await service.delete(id: context.parameters.require("id")) {
            case .deleted(let job): try APIJSON.response(VideoDeleted(id: job.id, deleted: true))
            case .cancelling(let job): try APIJSON.response(VideoDeleted(id: job.id, deleted: false))
            }
        }
        router.get("/v1/videos/:id/content") { request, context in
            try await content(request, id: context.parameters.require("id"), context: context)
        }
    }

    private func create(_ request: Request) async throws -> Response {
        let key = try request.idempotencyKey(maxLength: configuration.maxIdempotencyKeyLength)
        var request = request
        let contentType = request.headers[.contentType] ?? ""
        let boundary = try Multipart.boundary(ofContentType: contentType)
        // A form may carry the image: room for one as large as images may be, besides the fields.
        let limit = configuration.maxBodyBytes + (boundary == nil ? 0 : service.images.limits.maxBytes)
        let body = try await request.collectBody(
            limit: limit,
            tooLarge:
                "the request body is larger than \(limit) bytes; a video request with its image is smaller")
        let model = service.model.name
        let submission: JobSubmission
        if let boundary {
            let form = try Multipart(body: Array(body.readableBytesView), boundary: boundary)
            submission = try VideoSubmission.submission(form: form.parts, serverModel: model, images: service.images)
        } else if contentType.lowercased().hasPrefix("application/x-www-form-urlencoded") {
            guard let text = String(validating: body.readableBytesView, as: UTF8.self) else {
                throw ReelError.invalid("body", "the form body is not UTF-8 text")
            }
            submission = try VideoSubmission.submission(urlencoded: text, serverModel: model)
        } else if contentType.isEmpty || contentType.lowercased().hasPrefix("application/json") {
            submission = try VideoSubmission.submission(json: body.readableBytesView, serverModel: model)
        } else {
            throw ReelError.invalid(
                "Content-Type",
                "send multipart/form-data, application/json or application/x-www-form-urlencoded, not \(contentType)")
        }
        let (job, _) = try await service.submit(body: submission, idempotencyKey: key)
        return try APIJSON.response(VideoResource(job))
    }

    private func list(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        for (name, _) in query where !["after", "limit", "order"].contains(name) {
            throw ReelError.invalid(
                String(name.unicodeScalars.prefix(60)),
                "unknown query parameter \(name.quotedForMessage(limit: 60)); use after, limit and order")
        }
        var limit = Self.defaultPageSize
        if let text = query["limit"], !text.isEmpty {
            guard let parsed = Numerals.wholeNumber(text), (1...Self.maxPageSize).contains(parsed) else {
                throw ReelError.invalid(
                    "limit",
                    "limit must be a whole number from 1 to \(Self.maxPageSize), not \(text.quotedForMessage(limit: 40))"
                )
            }
            limit = parsed
        }
        var order = JobQuery.Order.newestFirst
        switch query["order"].map(String.init) {
        case nil, "", "desc": break
        case "asc": order = .oldestFirst
        case let other?:
            throw ReelError.invalid("order", "order must be asc or desc, not \(other.quotedForMessage(limit: 40))")
        }
        let after = query["after"].flatMap { $0.isEmpty ? nil : String($0) }
        // One more than asked for tells whether there is a next page.
        let jobs = try await service.jobs(
            JobQuery(order: order, after: after, limit: limit + 1), cursorField: "after")
        return try APIJSON.response(
            VideoPage(data: jobs.prefix(limit).map(VideoResource.init), hasMore: jobs.count > limit))
    }

    private func content(_ request: Request, id: String, context: BasicRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        for (name, _) in query where name != "variant" {
            throw ReelError.invalid(
                String(name.unicodeScalars.prefix(60)),
                "unknown query parameter \(name.quotedForMessage(limit: 60)); only variant is understood")
        }
        let variant = query["variant"].map(String.init) ?? "video"
        guard variant == "video" || variant == "thumbnail" else {
            throw ReelError.invalid(
                "variant",
                variant == "spritesheet"
                    ? "Reel makes no spritesheets; ask for variant video or thumbnail"
                    : "variant must be video or thumbnail, not \(variant.quotedForMessage(limit: 40))")
        }
        let job = try await service.job(id: id)
        guard job.state == .succeeded, let outputs = job.outputs else {
            throw ReelError(
                .notFound,
                "video \(job.id) is \(VideoResource(job).status); its content exists once it has completed")
        }
        if variant == "video" {
            return try await JobFileResponse.make(
                path: outputs.video, directory: outputs.directory, contentType: "video/mp4",
                filename: "\(job.id).mp4", fileIO: fileIO, context: context)
        }
        if let frames = outputs.framesDirectory {
            let first = frames + "/" + JobOutputs.frameName(1) + ".png"
            if JobFileResponse.isRegularFile(first, inside: outputs.directory) {
                return try await JobFileResponse.make(
                    path: first, directory: outputs.directory, contentType: "image/png",
                    filename: "\(job.id)-thumbnail.png", fileIO: fileIO, context: context)
            }
        }
        guard JobFileResponse.isRegularFile(outputs.video, inside: outputs.directory) else {
            throw ReelError(.notFound, "the video \(job.id).mp4 is no longer on the server")
        }
        let thumbnail: String
        do {
            thumbnail = try await Thumbnail.make(
                video: outputs.video, directory: outputs.directory,
                python: service.scheduler.configuration.engine.python)
        } catch  where !JobFileResponse.isRegularFile(outputs.video, inside: outputs.directory) {
            // Deleted while its frame was being decoded (a DELETE racing this request): gone, not a server fault.
            throw ReelError(.notFound, "the video \(job.id).mp4 is no longer on the server")
        }
        return try await JobFileResponse.make(
            path: thumbnail, directory: outputs.directory, contentType: "image/jpeg",
            filename: "\(job.id)-thumbnail.jpg", fileIO: fileIO, context: context)
    }
}
