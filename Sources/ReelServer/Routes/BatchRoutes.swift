import Foundation
import HTTPTypes
import Hummingbird
import ReelAPI
import ReelBatch
import ReelCore

/// `POST /v1/batches` (CSV or JSON), `GET /v1/batches/{id}` and `GET /v1/batches/{id}/report.csv`.
struct BatchRoutes {
    let batches: BatchService
    let maxBodyBytes: Int

    func register(on router: Router<BasicRequestContext>) {
        router.post("/v1/batches") { request, _ in try await submit(request) }
        router.get("/v1/batches/:id") { _, context in
            let (manifest, jobs) = try await batches.status(id: context.parameters.require("id"))
            return try APIJSON.response(BatchResource(manifest, jobs: jobs))
        }
        router.get("/v1/batches/:id/report.csv") { _, context in
            let (manifest, jobs) = try await batches.status(id: context.parameters.require("id"))
            let body = ByteBuffer(string: BatchReport.csv(manifest, jobs: jobs))
            return Response(
                status: .ok,
                headers: [
                    .contentType: "text/csv; charset=utf-8", .contentLength: String(body.readableBytes),
                    .contentDisposition: "attachment; filename=\"\(manifest.id)-report.csv\"",
                    HTTPField.Name("X-Content-Type-Options")!: "nosniff",
                ],
                body: ResponseBody(byteBuffer: body))
        }
    }

    private func submit(_ request: Request) async throws -> Response {
        let atomicText = request.uri.queryParameters["atomic"].map(String.init)
        guard atomicText == nil || atomicText == "true" || atomicText == "false" else {
            throw ReelError.invalid("atomic", "atomic must be true or false")
        }
        var request = request
        let body = try await request.collectBody(
            limit: maxBodyBytes, tooLarge: "the batch is larger than \(maxBodyBytes) bytes; split it into several")
        let contentType = (request.headers[.contentType] ?? "").lowercased()
        let rows: [BatchVerdict]
        let source: String
        if contentType.hasPrefix("text/csv") {
            guard let text = String(validating: body.readableBytesView, as: UTF8.self) else {
                throw ReelError.invalid("body", "the CSV is not UTF-8 text; save it as CSV UTF-8")
            }
            rows = try await batches.check(csv: text)
            source = "csv"
        } else if contentType.hasPrefix("application/json") || contentType.isEmpty {
            rows = try await batches.check(json: body.readableBytesView)
            source = "json"
        } else {
            throw ReelError.invalid("Content-Type", "send text/csv or application/json, not \(contentType)")
        }
        let (manifest, queued) = try await batches.submit(rows, source: source, atomic: atomicText == "true")
        return try APIJSON.response(BatchSubmitted(manifest, queued: queued), status: queued ? .created : .badRequest)
    }
}
