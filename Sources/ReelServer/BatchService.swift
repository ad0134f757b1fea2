import Foundation
import ReelAPI
import ReelCSV
import ReelCore
import ReelScheduler
import ReelStore

/// Batches: many rows validated together, queued together, and reported together.
public struct BatchService: Sendable {
    public let jobs: JobService
    let manifests: BatchManifestStore
    /// The most rows one batch may have.
    public var maxRows: Int

    public init(jobs: JobService, maxRows: Int = 10_000) {
        self.jobs = jobs
        manifests = BatchManifestStore(dataDirectory: jobs.scheduler.configuration.dataDirectory)
        self.maxRows = maxRows
    }

    /// One row as submitted: its number as the user sees it, and either its validated spec or what is wrong.
    struct CheckedRow {
        var row: Int
        var priority: Int
        var result: Result<GenerationSpec, ReelError>
    }

    /// Validates a CSV document: the header first (an unknown column rejects the whole file), then every row.
    func check(csv text: String) throws(ReelError) -> [CheckedRow] {
        try ClientText.check(text.utf8, as: .utf8)
        let table: CSVTable
        do {
            table = try CSVReader.parse(text, maxRows: maxRows)
        } catch let error where error.tooManyRows {
            throw .invalid("jobs", "the batch has more than \(maxRows) rows; the limit is \(maxRows): split it")
        } catch {
            throw ReelError(.invalidValue, field: "row \(error.row)", "the CSV cannot be read: \(error.message)")
        }
        guard table.header.contains("prompt") else {
            throw .invalid("prompt", "the CSV header has no 'prompt' column; it has \(table.header.joined(separator: ", "))")
        }
        for name in table.header where !SpecFields.known.contains(name) {
            throw .invalid(String(name.unicodeScalars.prefix(60)), "unknown column \(name.quotedForMessage(limit: 60)); the known columns are \(SpecFields.known.joined(separator: ", "))")
        }
        try checkCount(table.rows.count)
        return table.rows.map { row in
            var fields: [String: String] = [:]
            for (index, name) in table.header.enumerated() where index < row.fields.count { fields[name] = row.fields[index] }
            do throws(ReelError) {
                guard row.fields.count <= table.header.count else {
                    throw .invalid("row", "the row has \(row.fields.count) fields but the header has \(table.header.count)")
                }
                let parsed = try SpecFields.row(from: fields)
                return CheckedRow(row: row.number, priority: parsed.priority ?? 0, result: .success(try jobs.resolve(parsed)))
            } catch {
                return CheckedRow(row: row.number, priority: 0, result: .failure(error))
            }
        }
    }

    /// Validates a JSON batch `{"jobs":[…],"defaults":{…}}`; each job's fields override the defaults.
    func check(json body: some Collection<UInt8>) throws(ReelError) -> [CheckedRow] {
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
        guard case .array(let items)? = top["jobs"] else { throw .invalid("jobs", "jobs must be an array of job specs") }
        var defaults: [String: JSONInput] = [:]
        if let given = top["defaults"] {
            guard case .object(let object) = given else { throw .invalid("defaults", "defaults must be an object") }
            defaults = object
        }
        try checkCount(items.count)
        return items.enumerated().map { index, item in
            do throws(ReelError) {
                guard case .object(let fields) = item else {
                    throw .invalid("jobs", "job \(index + 1) is \(item.typeName), not an object")
                }
                let submission = try JobSubmission(fields: defaults.merging(fields) { _, own in own })
                return CheckedRow(
                    row: index + 1, priority: submission.priority ?? 0, result: .success(try jobs.resolve(submission)))
            } catch {
                return CheckedRow(row: index + 1, priority: 0, result: .failure(error))
            }
        }
    }

    private func checkCount(_ count: Int) throws(ReelError) {
        guard count > 0 else { throw .invalid("jobs", "the batch has no rows") }
        guard count <= maxRows else { throw .invalid("jobs", "the batch has \(count) rows; the limit is \(maxRows)") }
    }

    /// Queues the valid rows in one transaction (all of them, or none when `atomic` and any row is bad).
    func submit(_ rows: [CheckedRow], source: String, atomic: Bool) async throws -> (BatchManifest, queued: Bool) {
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
        let queued = try await jobs.withQueueRoom(for: newJobs.count) {
            try await jobs.store.enqueueAll(newJobs, now: Date())
        }
        try manifests.save(manifest)
        jobs.scheduler.jobsEnqueued()
        return (manifest, true)
    }

    /// A batch's manifest and its jobs as they are now, if the current caller may see it.
    func status(id: String) async throws -> (BatchManifest, [String: Job]) {
        let caller = Caller.current
        guard let manifest = manifests.load(id), caller.owner == nil || manifest.owner == caller.owner else {
            throw ReelError(.notFound, "no batch \(id)")
        }
        var byID: [String: Job] = [:]
        for job in try await jobs.store.jobs(batchID: id) where caller.canSee(job) { byID[job.id] = job }
        return (manifest, byID)
    }
}
