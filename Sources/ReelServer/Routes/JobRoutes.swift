import HTTPTypes
import Hummingbird
import ReelAPI
import ReelCore
import ReelStore

/// `POST /v1/jobs`, `GET /v1/jobs`, `GET /v1/jobs/{id}`, `DELETE /v1/jobs/{id}` and `GET /v1/jobs/{id}/events`.
/// Each sees only the caller's jobs (`Caller`, through `JobService`).
struct JobRoutes {
    let service: JobService
    let configuration: ReelServerConfiguration

    func register(on router: Router<BasicRequestContext>) {
        router.post("/v1/jobs") { request, _ in try await submit(request) }
        router.get("/v1/jobs") { request, _ in try await list(request) }
        router.get("/v1/jobs/:id") { _, context in
            try APIJSON.response(JobResource(try await service.job(id: context.parameters.require("id"))))
        }
        router.delete("/v1/jobs/:id") { _, context in
            try APIJSON.response(JobResource(try await service.cancel(id: context.parameters.require("id"))))
        }
        router.get("/v1/jobs/:id/events") { _, context in
            let job = try await service.job(id: context.parameters.require("id"))
            let events = try await service.store.events(jobID: job.id)
            return try APIJSON.response(DataList(data: events.map(JobEventResource.init)))
        }
    }

    private func submit(_ request: Request) async throws -> Response {
        let key = try request.idempotencyKey(maxLength: configuration.maxIdempotencyKeyLength)
        var request = request
        let boundary = try Multipart.boundary(ofContentType: request.headers[.contentType] ?? "")
        // A form may carry the images: room for two as large as images may be, besides the fields.
        let limit = configuration.maxBodyBytes + (boundary == nil ? 0 : 2 * service.images.limits.maxBytes)
        let body = try await request.collectBody(
            limit: limit, tooLarge: "the request body is larger than \(limit) bytes; a job spec is far smaller")
        let submission: JobSubmission
        if let boundary {
            let form = try Multipart(body: Array(body.readableBytesView), boundary: boundary)
            submission = try JobSubmission(form: form.parts, images: service.images)
        } else {
            submission = try JobSubmission(json: body.readableBytesView)
        }
        let (job, created) = try await service.submit(body: submission, idempotencyKey: key)
        var response = try APIJSON.response(JobResource(job), status: created ? .created : .ok)
        response.headers[.location] = "/v1/jobs/\(job.id)"
        return response
    }

    private func list(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        for (name, _) in query where !["state", "limit", "before"].contains(name) {
            throw ReelError.invalid(
                String(name.unicodeScalars.prefix(60)),
                "unknown query parameter \(name.quotedForMessage(limit: 60)); use state, limit and before")
        }
        var state: JobState?
        if let text = query["state"], !text.isEmpty {
            guard let parsed = JobState(rawValue: String(text)) else {
                throw ReelError.invalid(
                    "state",
                    "\(String(text).quotedForMessage()) is not a job state; use one of "
                        + JobState.allCases.map(\.rawValue).joined(separator: ", "))
            }
            state = parsed
        }
        var limit = configuration.defaultPageSize
        if let text = query["limit"], !text.isEmpty {
            guard let parsed = Numerals.wholeNumber(text), (1...configuration.maxPageSize).contains(parsed) else {
                throw ReelError.invalid(
                    "limit",
                    "limit must be a whole number from 1 to \(configuration.maxPageSize), not \(String(text).quotedForMessage())"
                )
            }
            limit = parsed
        }
        let before = query["before"].flatMap { $0.isEmpty ? nil : String($0) }
        // One more than asked for tells whether there is a next page; only the caller's jobs are listed.
        let jobs = try await service.jobs(
            JobQuery(state: state, after: before, limit: limit + 1), cursorField: "before")
        let page = Array(jobs.prefix(limit))
        let next = jobs.count > limit ? page.last?.id : nil
        return try APIJSON.response(JobPage(data: page.map(JobResource.init), next: next))
    }
}
