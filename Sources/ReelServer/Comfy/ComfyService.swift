import Foundation
import ReelCore
import ReelStore
import Synchronization

/// What a ComfyUI prompt was, kept with its job (as the job's `comfyui` event) so that `/queue`, `/history` and
/// `/ws` answer as ComfyUI would after any restart: the queue item's fields and what the translation found.
struct ComfyEnvelope: Codable, Sendable, Equatable {
    var number: Double
    var clientID: String?
    var extraData: ComfyValue
    var outputsToExecute: [String]
    var outputNode: String
    var outputTitle: String?
    var filenamePrefix: String
    var samplerNodes: [String]
    var executionOrder: [String]
    var classes: [String: String]
    var substitutions: [String]
    var switchStep: Int?
    var prompt: ComfyValue

    enum CodingKeys: String, CodingKey {
        case number
        case clientID = "client_id"
        case extraData = "extra_data"
        case outputsToExecute = "outputs_to_execute"
        case outputNode = "output_node"
        case outputTitle = "output_title"
        case filenamePrefix = "filename_prefix"
        case samplerNodes = "sampler_nodes"
        case executionOrder = "execution_order"
        case classes, substitutions
        case switchStep = "switch_step"
        case prompt
    }

    /// `/queue`'s and `/history`'s item: `[number, prompt_id, prompt, extra_data, outputs_to_execute]`.
    func item(promptID: String) -> ComfyValue {
        [
            .number(number), .string(promptID), prompt, extraData,
            .array(outputsToExecute.map(ComfyValue.string)),
        ]
    }

    /// The `SaveVideo` output's file as `/history` and `executed` name it: the prefix's folder as `subfolder`, and
    /// its name with the prompt id, which `/view` reads back.
    var outputFile: (subfolder: String, filename: String) {
        let parts = filenamePrefix.split(separator: "/", omittingEmptySubsequences: true).map {
            String($0.unicodeScalars.filter { ComfyService.safeNameCharacters.contains($0) })
        }.filter { !$0.isEmpty && $0 != "." && $0 != ".." }
        let base = parts.last ?? "ComfyUI"
        return (parts.dropLast().joined(separator: "/"), base)
    }

    func filename(promptID: String) -> String { "\(outputFile.filename)_\(promptID).mp4" }

    func uiOutput(promptID: String) -> ComfyValue {
        [
            "images": [
                [
                    "filename": .string(filename(promptID: promptID)), "subfolder": .string(outputFile.subfolder),
                    "type": "output",
                ]
            ],
            "animated": [true],
        ]
    }
}

/// ComfyUI's API over Reel's jobs: a prompt becomes one job whose id is the prompt id (a UUID, which no other door
/// gives a job), so the queue, history and files are the job store's, durable and shared by every node.
final class ComfyService: Sendable {
    let jobs: JobService
    /// ComfyUI's `input` folder: the pictures `/upload/image` took, which `LoadImage` names.
    let inputDirectory: URL
    private let envelopes = Mutex<[String: ComfyEnvelope]>([:])
    private let counter = Mutex<Double>(0)
    /// Where queue changes and job events go to the WebSocket clients.
    let hub: ComfyHub

    static let eventKind = "comfyui"
    static let safeNameCharacters = Set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._- ()".unicodeScalars)
    /// How many of the newest jobs `/queue` and `/history` look through.
    static let scanLimit = 2000

    init(jobs: JobService) {
        self.jobs = jobs
        inputDirectory = URL(fileURLWithPath: jobs.scheduler.configuration.dataDirectory)
            .appendingPathComponent("comfyui").appendingPathComponent("input")
        hub = ComfyHub()
        counter.withLock { $0 = Date().timeIntervalSince1970.rounded(.down) }
    }

    /// Whether a job came through ComfyUI's door: its id is a canonical lowercase UUID.
    static func isPromptID(_ id: some StringProtocol) -> Bool {
        // Parsed and written back: only the canonical form gives the same text.
        UUID(uuidString: String(id))?.uuidString.lowercased() == String(id)
    }

    // MARK: Files

    var model: ModelInfo { jobs.model }

    /// The loaders' file lists: the server's own files (a `comfyui:` model's), and the official Comfy-Org names
    /// of its architecture, which run as its model.
    func files() -> ComfyFiles {
        var files = ComfyFiles.officialNames(for: model.architecture)
        if let spec = try? ComfyModelSpec.parse(jobs.scheduler.configuration.model) {
            let own = [spec.unet, spec.unetHigh, spec.unetLow].compactMap { $0 }
            files.diffusionModels = own + files.diffusionModels.filter { !own.contains($0) }
            if let encoder = spec.textEncoder, !files.textEncoders.contains(encoder) {
                files.textEncoders.insert(encoder, at: 0)
            }
            if let vae = spec.vae, !files.vae.contains(vae) { files.vae.insert(vae, at: 0) }
        }
        files.loras = (jobs.loraCatalog.entries.map { $0.name + ".safetensors" }).sorted()
        files.inputImages = inputImages()
        return files
    }

    func inputImages() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: inputDirectory.path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted()
    }

    /// A name for ComfyUI's input folder, or nil when it is not a plain file name.
    static func safeName(_ name: String) -> String? {
        guard !name.isEmpty, name.utf8.count <= 200, name != ".", name != "..", !name.hasPrefix("."),
            name.unicodeScalars.allSatisfy({ safeNameCharacters.contains($0) })
        else { return nil }
        return name
    }

    /// `POST /upload/image`: stores the picture (checked as every Reel image) under its name, or under
    /// `name (1).ext` when another picture has that name; the same picture again keeps its name.
    func upload(_ bytes: [UInt8], name: String, overwrite: Bool) async throws -> String {
        guard let clean = Self.safeName(name) else {
            throw ReelError.invalid(
                "image",
                "the file name \(name.quotedForMessage(limit: 80)) must be a plain name of letters, digits, . _ - ( ) and spaces"
            )
        }
        // Checked as every Reel image; it is stored in the image store when a prompt names it.
        _ = try ImageHeader.read(bytes, field: "image", limits: jobs.images.limits)
        try FileManager.default.createDirectory(at: inputDirectory, withIntermediateDirectories: true)
        var chosen = clean
        let stem = (clean as NSString).deletingPathExtension
        let ext = (clean as NSString).pathExtension
        var n = 1
        while !overwrite,
            let existing = FileManager.default.contents(atPath: inputDirectory.appendingPathComponent(chosen).path)
        {
            if Array(existing) == bytes { break }
            chosen = "\(stem) (\(n))" + (ext.isEmpty ? "" : ".\(ext)")
            n += 1
        }
        try Data(bytes).write(to: inputDirectory.appendingPathComponent(chosen), options: .atomic)
        return chosen
    }

    // MARK: Prompts

    struct Submitted {
        var promptID: String
        var number: Double
    }

    /// `POST /prompt`: the prompt translated, checked as any Reel job, and queued with its envelope.
    func submit(_ body: ComfyValue) async throws -> Submitted {
        guard case .object(let fields) = body, let prompt = fields["prompt"], prompt != .null else {
            throw ComfyRejection(ComfyError("no_prompt", "No prompt provided", details: "No prompt provided"))
        }
        var promptID = UUID().uuidString.lowercased()
        if let given = fields["prompt_id"], given != .null {
            guard let text = given.string, Self.isPromptID(text) else {
                throw ComfyRejection(
                    ComfyError(
                        "invalid_prompt_id", "prompt_id must be a canonical lowercase UUID",
                        details: "\(given)".quotedForMessage(limit: 80)))
            }
            promptID = text
        }
        let targets = fields["partial_execution_targets"].flatMap { value -> [String]? in
            guard case .array(let items) = value else { return nil }
            return items.compactMap(\.string)
        }
        let files = files()
        let workflow = ComfyWorkflow(model: model, files: files)
        let job = try workflow.translate(prompt, targets: targets)
        var request = job.request
        let library = jobs.library
        func image(_ name: String?, field: String) async throws -> ImageReference? {
            guard let name else { return nil }
            let url = inputDirectory.appendingPathComponent(name)
            guard Self.safeName(name) != nil, let data = FileManager.default.contents(atPath: url.path) else {
                throw ComfyRejection(ComfyError("value_not_in_list", "Invalid image file: \(name)"))
            }
            return try await library.storeImage(Array(data), field: field).reference
        }
        let spec: GenerationSpec
        do {
            request.image = try await image(job.startImage, field: "image")
            request.lastImage = try await image(job.endImage, field: "last_image")
            spec = try await jobs.resolve(SpecRow(request: request))
        } catch let error as ReelError {
            throw Self.rejection(error, job: job)
        }
        let front = fields["front"] == .bool(true)
        let number: Double = counter.withLock { counter in
            counter += 1
            if let given = fields["number"]?.double, given.isFinite { return given }
            return front ? -counter : counter
        }
        var extraData = fields["extra_data"]?.object ?? [:]
        for secret in ["auth_token_comfy_org", "api_key_comfy_org"] { extraData[secret] = nil }
        if let client = fields["client_id"]?.string { extraData["client_id"] = .string(client) }
        extraData["create_time"] = .integer(Int64(Date().timeIntervalSince1970 * 1000))
        let envelope = ComfyEnvelope(
            number: number, clientID: fields["client_id"]?.string, extraData: .object(extraData),
            outputsToExecute: [job.outputNode], outputNode: job.outputNode, outputTitle: job.outputTitle,
            filenamePrefix: job.filenamePrefix, samplerNodes: job.samplerNodes, executionOrder: job.executionOrder,
            classes: job.classes, substitutions: job.substitutions, switchStep: request.sampler?.switchStep,
            prompt: prompt)
        let owner = Caller.current.owner
        let key = JobService.scoped("comfyui:" + promptID, owner)
        let new = NewJob(
            id: promptID, spec: spec, priority: front ? 1 : 0, idempotencyKey: key,
            requestDigest: canonicalDigest(prompt), owner: owner)
        let result: (job: Job, created: Bool)
        do {
            result = try await jobs.withQueueRoom(for: 1) { try await jobs.store.enqueue(new, now: Date()) }
        } catch let error as JobStoreError where error.code == .idempotencyConflict {
            throw ComfyRejection(
                ComfyError("invalid_prompt_id", "prompt_id \(promptID) was queued before with another prompt"))
        }
        if result.created {
            envelopes.withLock { $0[promptID] = envelope }
            let message = String(decoding: try JSONEncoder().encode(envelope), as: UTF8.self)
            try await jobs.store.appendEvent(jobID: promptID, kind: Self.eventKind, message: message, now: Date())
            jobs.scheduler.jobsEnqueued()
        }
        return Submitted(promptID: promptID, number: number)
    }

    /// Reel's validation error as ComfyUI's: on the node and input its field came from.
    static func rejection(_ error: ReelError, job: ComfyJob) -> ComfyRejection {
        let origin =
            error.field.flatMap { job.origin(ofField: $0) } ?? ComfyJob.FieldNode(node: job.outputNode, input: "video")
        let classType = job.classes[origin.node] ?? ""
        let item = ComfyError(
            "custom_validation_failed", error.message, details: origin.input,
            extraInfo: ["input_name": .string(origin.input), "reel_field": .string(error.field ?? "")])
        return ComfyRejection.input(item, node: origin.node, classType: classType, output: job.outputNode)
    }

    /// The envelope of a ComfyUI job: from memory, or from its event.
    func envelope(of jobID: String) async throws -> ComfyEnvelope? {
        guard Self.isPromptID(jobID) else { return nil }
        if let cached = envelopes.withLock({ $0[jobID] }) { return cached }
        guard let event = try await jobs.store.events(jobID: jobID).first(where: { $0.kind == Self.eventKind }),
            let message = event.message,
            let envelope = try? JSONDecoder().decode(ComfyEnvelope.self, from: Data(message.utf8))
        else { return nil }
        envelopes.withLock { cache in
            if cache.count > 4096 { cache.removeAll() }
            cache[jobID] = envelope
        }
        return envelope
    }

    /// The caller's ComfyUI jobs in a state, oldest first.
    func promptJobs(_ states: Set<JobState>) async throws -> [Job] {
        var found: [Job] = []
        for state in states.sorted(by: { $0.rawValue < $1.rawValue }) {
            let page = try await jobs.jobs(
                JobQuery(state: state, order: .newestFirst, limit: Self.scanLimit), cursorField: "after")
            found += page.filter { Self.isPromptID($0.id) }
        }
        return found.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
    }

    /// `queue_remaining`: the caller's ComfyUI jobs not yet in the history.
    func queueRemaining() async throws -> Int {
        try await promptJobs([.queued, .running]).count
    }

    func historyEntry(_ job: Job, _ envelope: ComfyEnvelope) -> ComfyValue {
        let stamp = { (date: Date?) -> ComfyValue in
            .integer(Int64((date ?? job.createdAt).timeIntervalSince1970 * 1000))
        }
        var messages: [ComfyValue] = [
            ["execution_start", ["prompt_id": .string(job.id), "timestamp": stamp(job.startedAt)]],
            ["execution_cached", ["nodes": [], "prompt_id": .string(job.id), "timestamp": stamp(job.startedAt)]],
        ]
        let succeeded = job.state == .succeeded
        switch job.state {
        case .succeeded:
            messages.append(["execution_success", ["prompt_id": .string(job.id), "timestamp": stamp(job.finishedAt)]])
        case .cancelled:
            messages.append(
                [
                    "execution_interrupted",
                    Self.executionInterrupted(job.id, envelope, at: job.finishedAt ?? job.createdAt),
                ])
        default:
            messages.append(["execution_error", executionError(job, envelope, at: job.finishedAt)])
        }
        let meta: ComfyValue = [
            envelope.outputNode: [
                "node_id": .string(envelope.outputNode), "display_node": .string(envelope.outputNode),
                "parent_node": .null, "real_node_id": .string(envelope.outputNode),
            ]
        ]
        return [
            "prompt": envelope.item(promptID: job.id),
            "outputs": succeeded ? [envelope.outputNode: envelope.uiOutput(promptID: job.id)] : [:],
            "status": [
                "status_str": succeeded ? "success" : "error", "completed": .bool(succeeded),
                "messages": .array(messages),
            ],
            "meta": succeeded ? meta : [:],
        ]
    }

    /// `execution_interrupted`'s data, in `/history` and on the socket: the first sampler as the node.
    static func executionInterrupted(_ promptID: String, _ envelope: ComfyEnvelope?, at date: Date) -> ComfyValue {
        let node = envelope?.samplerNodes.first ?? ""
        return [
            "prompt_id": .string(promptID), "node_id": .string(node),
            "node_type": .string(envelope?.classes[node] ?? ""), "executed": [],
            "timestamp": .integer(Int64(date.timeIntervalSince1970 * 1000)),
        ]
    }

    func executionError(_ job: Job, _ envelope: ComfyEnvelope, at date: Date?) -> ComfyValue {
        let node = envelope.samplerNodes.first ?? envelope.outputNode
        return [
            "prompt_id": .string(job.id), "node_id": .string(node), "node_type": .string(envelope.classes[node] ?? ""),
            "executed": [], "exception_message": .string(job.errorMessage ?? "the job failed"),
            "exception_type": .string(job.errorCode ?? "error"), "traceback": [], "current_inputs": [:],
            "current_outputs": [:], "timestamp": .integer(Int64((date ?? Date()).timeIntervalSince1970 * 1000)),
        ]
    }

    /// The caller's finished ComfyUI jobs with their envelopes, oldest first.
    func history(maxItems: Int?, offset: Int) async throws -> [(Job, ComfyEnvelope)] {
        let done = try await promptJobs([.succeeded, .failed, .cancelled])
        var entries: [(Job, ComfyEnvelope)] = []
        for job in done {
            if let envelope = try await envelope(of: job.id) { entries.append((job, envelope)) }
        }
        // ComfyUI's history gives the newest max_items after skipping `offset` from the newest end.
        let end = max(0, entries.count - offset)
        let start = maxItems.map { max(0, end - $0) } ?? 0
        return Array(entries[start..<end])
    }

    /// The job of a prompt id the caller may see, or nil.
    func job(promptID: String) async throws -> Job? {
        guard Self.isPromptID(promptID) else { return nil }
        return try? await jobs.job(id: promptID)
    }
}
