import Foundation
import HTTPTypes
import Hummingbird
import ReelCore
import ReelStore

/// ComfyUI's HTTP API (server.py), each route both bare and under `/api/`: scripts and workflows written for a
/// ComfyUI server queue Reel jobs unchanged. docs/comfyui.md says what each route does here; the WebSocket `/ws`
/// is served by `ComfyWebSocket` in the connection's pipeline.
struct ComfyRoutes {
    let comfy: ComfyService
    let configuration: ReelServerConfiguration
    let fileIO = FileIO()

    func register(on router: Router<BasicRequestContext>) {
        for base in ["", "/api"] {
            router.post("\(base)/prompt") { request, _ in try await prompt(request) }
            router.get("\(base)/prompt") { _, _ in
                try Self.json(["exec_info": ["queue_remaining": .integer(Int64(try await comfy.queueRemaining()))]])
            }
            router.get("\(base)/queue") { _, _ in try await queue() }
            router.post("\(base)/queue") { request, _ in try await editQueue(request) }
            router.get("\(base)/history") { request, _ in try await history(request) }
            router.post("\(base)/history") { request, _ in try await editHistory(request) }
            router.get("\(base)/history/:id") { _, context in
                let id = try context.parameters.require("id")
                guard let job = try await comfy.job(promptID: id), job.state.isTerminal,
                    let envelope = try await comfy.envelope(of: job.id)
                else { return try Self.json([:]) }
                return Self.orderedJSON([(job.id, comfy.historyEntry(job, envelope))])
            }
            router.get("\(base)/view") { request, context in try await view(request, context: context) }
            router.post("\(base)/interrupt") { request, _ in try await interrupt(request) }
            router.post("\(base)/free") { request, _ in
                var request = request
                _ = try await request.collectBody(limit: 65536, tooLarge: "the body of /free is a small JSON object")
                // Reel's workers stay warm by design: each slot keeps its model loaded for the next job.
                return Response(status: .ok)
            }
            router.post("\(base)/upload/image") { request, _ in try await upload(request) }
            router.get("\(base)/system_stats") { _, _ in try systemStats() }
            router.get("\(base)/object_info") { _, _ in
                try Self.json(.object(ComfyNodeCatalog.objectInfo(files: comfy.files())))
            }
            router.get("\(base)/object_info/:class") { _, context in
                let name = try context.parameters.require("class")
                guard let node = ComfyNodeCatalog.objectInfo(files: comfy.files())[name] else {
                    return try Self.json([:])
                }
                return try Self.json([name: node])
            }
            router.get("\(base)/embeddings") { _, _ in try Self.json([]) }
            router.get("\(base)/extensions") { _, _ in try Self.json([]) }
            router.get("\(base)/models") { _, _ in
                try Self.json(.array(comfy.files().folders.map { .string($0.name) }))
            }
            router.get("\(base)/models/:folder") { _, context in
                let folder = try context.parameters.require("folder")
                guard let files = comfy.files().folders.first(where: { $0.name == folder })?.files else {
                    throw ReelError(.notFound, "no model folder \(folder.quotedForMessage(limit: 60))")
                }
                return try Self.json(.array(files.map(ComfyValue.string)))
            }
            router.get("\(base)/features") { _, _ in
                try Self.json([
                    "supports_preview_metadata": false,
                    "max_upload_size": .integer(Int64(comfy.jobs.images.limits.maxBytes)),
                ])
            }
            router.get("\(base)/ws") { _, _ -> Response in
                throw ReelError.invalid(
                    "Upgrade", "/ws is ComfyUI's WebSocket: connect with a WebSocket client (Upgrade: websocket)")
            }
        }
    }

    // MARK: JSON

    static func json(_ value: ComfyValue, status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try JSONEncoder().encode(value)
        return Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// A JSON object whose keys keep their order (ComfyUI's history is oldest first).
    static func orderedJSON(_ items: [(String, ComfyValue)]) -> Response {
        let encoder = JSONEncoder()
        var text = "{"
        for (i, (key, value)) in items.enumerated() {
            if i > 0 { text += "," }
            text += String(decoding: (try? encoder.encode(ComfyValue.string(key))) ?? Data(), as: UTF8.self) + ":"
            text += String(decoding: (try? encoder.encode(value)) ?? Data("null".utf8), as: UTF8.self)
        }
        text += "}"
        return Response(
            status: .ok, headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    private func body(_ request: Request, optional: Bool = true) async throws -> ComfyValue? {
        var request = request
        let buffer = try await request.collectBody(
            limit: configuration.maxBodyBytes,
            tooLarge: "the request body is larger than \(configuration.maxBodyBytes) bytes")
        if buffer.readableBytes == 0 && optional { return nil }
        do {
            return try JSONDecoder().decode(ComfyValue.self, from: Data(buffer.readableBytesView))
        } catch {
            throw ReelError.invalid("body", "the body is not JSON")
        }
    }

    // MARK: Routes

    private func prompt(_ request: Request) async throws -> Response {
        let body: ComfyValue
        do {
            guard let parsed = try await self.body(request) else {
                throw ComfyRejection(ComfyError("no_prompt", "No prompt provided", details: "No prompt provided"))
            }
            body = parsed
        } catch let error as ReelError where error.code == .invalidValue {
            return try Self.json(
                ComfyRejection(ComfyError("invalid_prompt", error.message)).value, status: .badRequest)
        }
        do {
            let submitted = try await comfy.submit(body)
            let number: ComfyValue =
                submitted.number == submitted.number.rounded() && abs(submitted.number) < 9e15
                ? .integer(Int64(submitted.number)) : .number(submitted.number)
            return try Self.json(["prompt_id": .string(submitted.promptID), "number": number, "node_errors": [:]])
        } catch let rejection as ComfyRejection {
            return try Self.json(rejection.value, status: .badRequest)
        }
    }

    private func queue() async throws -> Response {
        func items(_ jobs: [Job]) async throws -> ComfyValue {
            var list: [ComfyValue] = []
            for job in jobs {
                if let envelope = try await comfy.envelope(of: job.id) { list.append(envelope.item(promptID: job.id)) }
            }
            return .array(list)
        }
        return try Self.json([
            "queue_running": try await items(try await comfy.promptJobs([.running])),
            "queue_pending": try await items(try await comfy.promptJobs([.queued])),
        ])
    }

    private func ids(_ body: ComfyValue?, field: String) throws -> [String] {
        guard let value = body?.object?[field] else { return [] }
        guard case .array(let items) = value else {
            throw ReelError.invalid(field, "\(field) must be a list of prompt ids")
        }
        return items.compactMap(\.string)
    }

    private func editQueue(_ request: Request) async throws -> Response {
        let body = try await self.body(request)
        var cancel = try ids(body, field: "delete")
        if body?.object?["clear"] == .bool(true) { cancel += try await comfy.promptJobs([.queued]).map(\.id) }
        for id in cancel {
            // ComfyUI deletes pending prompts only; a running one is interrupted through /interrupt.
            if let job = try await comfy.job(promptID: id), job.state == .queued {
                _ = try await comfy.jobs.cancel(id: id)
            }
        }
        return Response(status: .ok)
    }

    private func history(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        func count(_ name: String) throws -> Int? {
            guard let text = query[Substring(name)].map(String.init), !text.isEmpty else { return nil }
            guard let n = Numerals.wholeNumber(Substring(text)), n >= 0, n <= 1_000_000 else {
                throw ReelError.invalid(
                    name, "\(name) must be a whole number from 0, not \(text.quotedForMessage(limit: 40))")
            }
            return n
        }
        let entries = try await comfy.history(maxItems: try count("max_items"), offset: try count("offset") ?? 0)
        return Self.orderedJSON(entries.map { ($0.0.id, comfy.historyEntry($0.0, $0.1)) })
    }

    private func editHistory(_ request: Request) async throws -> Response {
        let body = try await self.body(request)
        var delete = try ids(body, field: "delete")
        if body?.object?["clear"] == .bool(true) {
            delete += try await comfy.promptJobs([.succeeded, .failed, .cancelled]).map(\.id)
        }
        for id in delete {
            if let job = try await comfy.job(promptID: id), job.state.isTerminal {
                _ = try await comfy.jobs.delete(id: id)
            }
        }
        return Response(status: .ok)
    }

    private func interrupt(_ request: Request) async throws -> Response {
        let body = try await self.body(request)
        let only = body?.object?["prompt_id"]?.string
        for job in try await comfy.promptJobs([.running]) where only == nil || job.id == only {
            _ = try await comfy.jobs.cancel(id: job.id)
        }
        return Response(status: .ok)
    }

    private func view(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        guard var filename = query["filename"].map(String.init), !filename.isEmpty else {
            throw ReelError.invalid("filename", "give the file's name: /view?filename=NAME&subfolder=&type=output")
        }
        var type = query["type"].map(String.init) ?? "output"
        // ComfyUI's annotated names: "name.mp4 [output]".
        for annotation in ["output", "input", "temp"] where filename.hasSuffix(" [\(annotation)]") {
            filename = String(filename.dropLast(annotation.count + 3))
            type = annotation
        }
        guard !filename.contains("/"), !filename.contains("\\"), !filename.contains(".."), !filename.hasPrefix(".")
        else {
            throw APIError(
                status: .forbidden, ReelError(.invalidValue, field: "filename", "the file name may not name a path"))
        }
        let subfolder = query["subfolder"].map(String.init) ?? ""
        guard !subfolder.contains(".."), !subfolder.hasPrefix("/"), !subfolder.contains("\\") else {
            throw APIError(
                status: .forbidden,
                ReelError(.invalidValue, field: "subfolder", "the subfolder may not leave its folder"))
        }
        switch type {
        case "output":
            // The prompt id is the name's last 36 characters before .mp4 (ComfyEnvelope.filename).
            guard filename.hasSuffix(".mp4"), filename.count > 41 else {
                throw ReelError(.notFound, "no output \(filename.quotedForMessage(limit: 80))")
            }
            let id = String(filename.dropLast(4).suffix(36))
            guard let job = try await comfy.job(promptID: id), job.state == .succeeded, let outputs = job.outputs,
                let envelope = try await comfy.envelope(of: id), envelope.filename(promptID: id) == filename,
                envelope.outputFile.subfolder == subfolder
            else {
                throw ReelError(
                    .notFound,
                    "no output \(filename.quotedForMessage(limit: 80)) in \(subfolder.quotedForMessage(limit: 60))")
            }
            return try await JobFileResponse.make(
                path: outputs.video, directory: outputs.directory, contentType: "video/mp4", filename: filename,
                fileIO: fileIO, context: context)
        case "input":
            guard subfolder.isEmpty, let name = ComfyService.safeName(filename) else {
                throw ReelError(.notFound, "no input \(filename.quotedForMessage(limit: 80))")
            }
            let path = comfy.inputDirectory.appendingPathComponent(name).path
            let lower = name.lowercased()
            let contentType =
                lower.hasSuffix(".png") ? "image/png" : lower.hasSuffix(".webp") ? "image/webp" : "image/jpeg"
            return try await JobFileResponse.make(
                path: path, directory: comfy.inputDirectory.path, contentType: contentType, filename: name,
                fileIO: fileIO, context: context)
        default:
            throw ReelError(.notFound, "Reel keeps no \(type.quotedForMessage(limit: 20)) files")
        }
    }

    private func upload(_ request: Request) async throws -> Response {
        var request = request
        let contentType = request.headers[.contentType] ?? ""
        guard let boundary = try Multipart.boundary(ofContentType: contentType) else {
            throw ReelError.invalid("Content-Type", "send the picture as multipart/form-data with an image part")
        }
        let limit = comfy.jobs.images.limits.maxBytes + 65536
        let body = try await request.collectBody(limit: limit, tooLarge: "the picture is larger than \(limit) bytes")
        let form = try Multipart(body: Array(body.readableBytesView), boundary: boundary)
        guard let image = form.parts.first(where: { $0.name == "image" }) else {
            throw ReelError.invalid("image", "the form has no image part")
        }
        func field(_ name: String) -> String? {
            form.parts.first { $0.name == name }.map { String(decoding: $0.body, as: UTF8.self) }
        }
        let type = field("type") ?? "input"
        guard type == "input" else {
            throw ReelError.invalid(
                "type", "Reel keeps uploads in the input folder only, not \(type.quotedForMessage(limit: 20))")
        }
        guard (field("subfolder") ?? "").isEmpty else {
            throw ReelError.invalid("subfolder", "Reel's input folder has no subfolders; leave subfolder empty")
        }
        let overwrite = ["true", "1"].contains(field("overwrite") ?? "")
        let name = try await comfy.upload(
            Array(image.body), name: image.filename ?? "image.png", overwrite: overwrite)
        return try Self.json(["name": .string(name), "subfolder": "", "type": "input"])
    }

    private func systemStats() throws -> Response {
        let info = ProcessInfo.processInfo
        let devices: [ComfyValue] = comfy.jobs.scheduler.workers.enumerated().map { index, worker in
            let total = ComfyValue.integer(worker.totalMemoryBytes ?? 0)
            let free = ComfyValue.integer(worker.freeMemoryBytes ?? 0)
            return [
                "name": .string("\(worker.device) (\(worker.slot))"),
                "type": .string(worker.device.hasPrefix("cuda") ? "cuda" : "cpu"), "index": .integer(Int64(index)),
                "vram_total": total, "vram_free": free, "torch_vram_total": total, "torch_vram_free": free,
            ]
        }
        return try Self.json([
            "system": [
                "os": "posix", "ram_total": .integer(Int64(info.physicalMemory)), "ram_free": 0,
                "comfyui_version": "reel", "python_version": "",
                "pytorch_version": "", "embedded_python": false, "argv": [],
            ],
            "devices": .array(devices),
        ])
    }
}
