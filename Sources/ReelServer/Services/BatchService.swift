import Foundation
import ReelAPI
import ReelBatch
import ReelCSV
import ReelCore
import ReelScheduler
import ReelStore

/// Batches: many rows validated together, queued together, and reported together.
public struct BatchService: Sendable {
    public let jobs: JobService
    /// The most rows one batch may have.
    public var maxRows: Int

    public init(jobs: JobService, maxRows: Int = BatchValidation.defaultMaxRows) {
        self.jobs = jobs
        self.maxRows = maxRows
    }

    /// The checks every batch passes, the same `reel batch` makes: this server's model, limits and styles. Rows'
    /// images are read from this node's files (`check` first copies those it lacks from the job store).
    var validation: BatchValidation {
        let images = jobs.images
        var validation = BatchValidation(
            model: jobs.model, limits: jobs.limits, styles: jobs.styles, maxRows: maxRows, runner: "this server",
            images: { name, field throws(ReelError) in try images.resolve(name, field: field) })
        validation.loras = jobs.loraCatalog
        return validation
    }

    /// Validates a CSV document: the header first (an unknown column rejects the whole file), then every row.
    func check(csv text: String) async throws -> [BatchVerdict] {
        try await check(BatchValidation.read(csv: text, maxRows: maxRows))
    }

    /// Validates rows already read: the images they name by id that this node has no file of are copied from the
    /// job store first (images another node took), then every row is checked.
    func check(_ rows: [BatchInputRow]) async throws -> [BatchVerdict] {
        let validation = validation
        try validation.checkCount(rows.count)
        try await jobs.library.prefetch(
            rows.flatMap { row in (try? row.fields.get()).map { [$0.imageName, $0.lastImageName] } ?? [] }
                .compactMap { $0 })
        return try validation.check(rows)
    }

    /// Validates a JSON batch `{"jobs":[…],"defaults":{…}}`; each job's fields override the defaults. The JSON is
    /// read here (its form is the API's); its rows are checked as a CSV's are.
    func check(json body: some Collection<UInt8>) async throws -> [BatchVerdict] {
        try await check(rows(json: body))
    }

    /// The rows of a JSON batch, each job's fields typed (a whole-batch problem is thrown).
    func rows(json body: some Collection<UInt8>) throws(ReelError) -> [BatchInputRow] {
        try ClientText.check(body, as: .json)
        let decoded: JSONInput
        do {
            decoded = try JSONDecoder().decode(JSONInput.self, from: Data(body))
        } catch {
            throw ReelError(.invalidJSON, "the body is not valid JSON; send {\"jobs\": [{\"prompt\": \"…\"}]}")
        }
        guard case .object(let top) = decoded else {
            throw ReelError(.invalidJSON, "the body is \(decoded.typeName), not {\"jobs\": […], \"defaults\": {…}}")
        }
        for name in top.keys where name != "jobs" && name != "defaults" {
            throw .invalid(
                String(name.unicodeScalars.prefix(60)),
                "unknown field \(name.quotedForMessage(limit: 60)); a batch has jobs and defaults")
        }
        guard case .array(let items)? = top["jobs"] else {
            throw .invalid("jobs", "jobs must be an array of job specs")
        }
        var defaults: [String: JSONInput] = [:]
        if let given = top["defaults"] {
            guard case .object(let object) = given else { throw .invalid("defaults", "defaults must be an object") }
            defaults = object
        }
        // Counted before any job is read, so an oversized batch costs no more than its count.
        try validation.checkCount(items.count)
        return items.enumerated().map { index, item in
            do throws(ReelError) {
                guard case .object(let fields) = item else {
                    throw .invalid("jobs", "job \(index + 1) is \(item.typeName), not an object")
                }
                let submission = try JobSubmission(fields: defaults.merging(fields) { _, own in own })
                return BatchInputRow(row: index + 1, fields: .success(try submission.specRow()))
            } catch {
                return BatchInputRow(row: index + 1, fields: .failure(error))
            }
        }
    }

    /// Queues the valid rows and the batch's manifest in one transaction (all of them, or none when `atomic` and any
    /// row is bad).
    func submit(_ rows: [BatchVerdict], source: String, atomic: Bool) async throws -> (BatchManifest, queued: Bool) {
        let id = BatchManifest.makeID()
        let owner = Caller.current.owner
        var accepted: [BatchManifest.Accepted] = []
        var rejected: [BatchManifest.Rejected] = []
        var newJobs: [NewJob] = []
        for row in rows {
            switch row.result {
            case .success(let spec):
                let job = NewJob(spec: spec, priority: row.priority, batchID: id, owner: owner)
                newJobs.append(job)
                accepted.append(.init(row: row.row, job: job.id))
            case .failure(let error):
                rejected.append(.init(row: row.row, column: error.field, message: error.message))
            }
        }
        var manifest = BatchManifest(
            id: id, createdAt: Date(), source: source, accepted: accepted, rejected: rejected, owner: owner)
        if atomic && !rejected.isEmpty {
            manifest.accepted = []
            return (manifest, false)
        }
        // Every node that may run one of the jobs reads its images from the store.
        var shared = Set<String>()
        for job in newJobs {
            for (image, field) in [(job.spec.image, "image"), (job.spec.lastImage, "last_image")] {
                guard let image, shared.insert(image.sha256).inserted else { continue }
                try await jobs.library.share(image, field: field)
            }
        }
        // The manifest goes into the store with its jobs, in one transaction: every node sharing the store can
        // report the batch, and no crash leaves jobs without their manifest or a manifest without its jobs.
        let stored = try await jobs.withQueueRoom(for: newJobs.count) {
            try await jobs.store.enqueueBatch(manifest, jobs: newJobs, now: Date()).manifest
        }
        jobs.scheduler.jobsEnqueued()
        return (stored, true)
    }

    /// A batch's manifest and its jobs as they are now, if the current caller may see it.
    func status(id: String) async throws -> (BatchManifest, [String: Job]) {
        let caller = Caller.current
        guard let manifest = try await jobs.store.batch(id: id), caller.owner == nil || manifest.owner == caller.owner
        else {
            throw ReelError(.notFound, "no batch \(id)")
        }
        var byID: [String: Job] = [:]
        for job in try await jobs.store.jobs(batchID: id) where caller.canSee(job) { byID[job.id] = job }
        return (manifest, byID)
    }
}
