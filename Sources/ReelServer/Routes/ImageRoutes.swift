import Foundation
import HTTPTypes
import Hummingbird
import ReelAPI
import ReelCore
import ReelStore

/// `POST /v1/images` stores an image once (by the SHA-256 of its bytes) and answers its id, which jobs, batches and
/// videos then name as `image` or `last_image`; `GET /v1/images/{id}` describes a stored one. The body is the image
/// itself (`Content-Type: image/png`, `image/jpeg`, `image/webp` or `application/octet-stream`) or a
/// `multipart/form-data` form with the image as its `file` part. The image is checked before it is stored
/// (`ImageHeader`): its format, that it is whole, its bytes (413) and pixels (400). It is stored in the job store,
/// which every node of a cluster reads, and as a file in this node's data directory (`ImageLibrary`).
struct ImageRoutes {
    let service: JobService

    func register(on router: Router<BasicRequestContext>) {
        router.post("/v1/images") { request, _ in try await upload(request) }
        router.get("/v1/images/:id") { _, context in
            let id = try context.parameters.require("id")
            return try APIJSON.response(ImageResource(try await service.library.reference(id: id, field: "id")))
        }
    }

    private func upload(_ request: Request) async throws -> Response {
        var request = request
        let images = service.images
        let contentType = request.headers[.contentType] ?? ""
        let boundary = try Multipart.boundary(ofContentType: contentType)
        // Room for the largest image accepted, and a form's headers around it.
        let limit = images.limits.maxBytes + (boundary == nil ? 0 : 64 << 10)
        let body = try await request.collectBody(
            limit: limit, tooLarge: "the image is larger than \(images.limits.maxBytes) bytes, the most accepted")
        let bytes: ArraySlice<UInt8>
        if let boundary {
            let form = try Multipart(body: Array(body.readableBytesView), boundary: boundary)
            guard let file = form.parts.first(where: { $0.name == "file" }) else {
                throw ReelError.invalid("file", "the form has no file part; send the image as the part named file")
            }
            bytes = file.body
        } else {
            let type = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            guard type.isEmpty || type.lowercased().hasPrefix("image/") || type == "application/octet-stream" else {
                throw ReelError.invalid(
                    "Content-Type",
                    "send the image itself (image/png, image/jpeg, image/webp) or multipart/form-data, not \(type)")
            }
            bytes = ArraySlice(body.readableBytesView)
        }
        // Into this node's files and the job store, where every node sharing it reads it.
        let (reference, created) = try await service.library.storeImage(
            bytes, field: boundary == nil ? "body" : "file")
        // 201 for a new image, 200 for one stored already (the same bytes uploaded again, to any node).
        var response = try APIJSON.response(ImageResource(reference), status: created ? .created : .ok)
        response.headers[.location] = "/v1/images/\(reference.id)"
        return response
    }
}
