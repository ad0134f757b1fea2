import Foundation
import ReelCore
import Synchronization

/// A `JobStore` kept in memory under one lock, with the same rules as `SQLiteJobStore`: for tests and for trying
/// things out. Nothing survives the process.
public final class MemoryJobStore: JobStore {
    private struct Storage {
        var jobs: [String: Job] = [:]
        /// When each queued job was first passed over by an affinity claim (`ClaimAffinity`); cleared at its claim.
        var passedOver: [String: Date] = [:]
        var requestDigests: [String: String] = [:]
        var jobIDsByIdempotencyKey: [String: String] = [:]
        var events: [String: [JobEvent]] = [:]
        var batches: [String: BatchManifest] = [:]
        var images: [String: StoredImage] = [:]
        var lastSequence: Int64 = 0
        /// Updates of the operation under way, published once it has committed (left the lock).
        var outbox: [JobUpdate] = []

        mutating func insert(_ new: NewJob, now: Date) throws -> (job: Job, created: Bool) {
            if let key = new.idempotencyKey, let existingID = jobIDsByIdempotencyKey[key],
                let existing = jobs[existingID]
            {
                guard requestDigests[existingID] == new.requestDigest else {
                    throw JobStoreError.idempotencyConflict(key: key, jobID: existingID)
                }
                return (existing, false)
            }
            guard jobs[new.id] == nil else { throw JobStoreError.duplicateID(new.id) }
            let job = Job(new, now: now)
            jobs[job.id] = job
            requestDigests[job.id] = new.requestDigest
            if let key = new.idempotencyKey { jobIDsByIdempotencyKey[key] = job.id }
            log(PendingEvent(.queued), for: job.id, now: now)
            return (job, true)
        }

        mutating func log(_ event: PendingEvent, for jobID: String, now: Date) {
            lastSequence += 1
            events[jobID, default: []].append(
                JobEvent(
                    jobID: jobID, sequence: lastSequence, at: now.storedPrecision, kind: event.kind,
                    message: event.message))
            if let job = jobs[jobID] {
                outbox.append(JobUpdate(kind: event.kind, message: event.message, job: job, at: now.storedPrecision))
            }
        }

        /// Applies `change` to the job `lease` names if the lease is current; false otherwise.
        mutating func update(_ lease: Lease, now: Date, _ change: (inout Job) -> PendingEvent?) -> Bool {
            guard var job = jobs[lease.jobID], job.isHeld(by: lease) else { return false }
            let event = change(&job)
            jobs[job.id] = job
            if let event { log(event, for: job.id, now: now) }
            return true
        }

        mutating func recover(_ ids: [String], maxAttempts: Int, now: Date, because why: (Job) -> String) -> [Job] {
            ids.map { id in
                var job = jobs[id]!
                let event = job.recover(because: why(job), maxAttempts: maxAttempts, now: now)
                jobs[id] = job
                log(event, for: id, now: now)
                return job
            }
        }
    }

    private let storage = Mutex(Storage())
    private let feed = UpdateFeed()

    public init() {}

    /// Runs `body` under the lock, then publishes the updates it logged.
    private func mutate<R>(_ body: (inout Storage) throws -> R) rethrows -> R {
        let (result, outbox) = try storage.withLock { storage -> (R, [JobUpdate]) in
            defer { storage.outbox = [] }
            let result = try body(&storage)
            return (result, storage.outbox)
        }
        feed.publish(outbox)
        return result
    }

    public func updates() -> AsyncStream<JobUpdate> { feed.subscribe() }

    public var updateSubscriberCount: Int { feed.subscriberCount }

    public func publish(_ update: JobUpdate) { feed.publish(update) }

    public func relayUpdates() {}

    public func enqueue(_ job: NewJob, now: Date) throws -> (job: Job, created: Bool) {
        try mutate { try $0.insert(job, now: now) }
    }

    public func enqueueAll(_ jobs: [NewJob], now: Date) throws -> [Job] {
        try mutate { storage in
            // Work on a copy so that a failure part-way leaves nothing behind.
            var copy = storage
            let added = try jobs.map { try copy.insert($0, now: now).job }
            storage = copy
            return added
        }
    }

    public func enqueueBatch(
        _ manifest: BatchManifest, jobs: [NewJob], now: Date
    ) throws
        -> (manifest: BatchManifest, jobs: [Job])
    {
        try mutate { storage in
            guard storage.batches[manifest.id] == nil else { throw JobStoreError.duplicateBatch(manifest.id) }
            // Work on a copy so that a failure part-way leaves nothing behind, manifest included.
            var copy = storage
            let added = try jobs.map { job in
                var job = job
                job.batchID = manifest.id
                return try copy.insert(job, now: now).job
            }
            var stored = manifest
            stored.createdAt = now.storedPrecision
            copy.batches[stored.id] = stored
            storage = copy
            return (stored, added)
        }
    }

    public func batch(id: String) -> BatchManifest? {
        storage.withLock { $0.batches[id] }
    }

    public func importBatch(_ manifest: BatchManifest) -> Bool {
        storage.withLock { storage in
            guard storage.batches[manifest.id] == nil else { return false }
            var stored = manifest
            stored.createdAt = manifest.createdAt.storedPrecision
            storage.batches[stored.id] = stored
            return true
        }
    }

    /// An image's bytes, and when it was last stored or used.
    private struct StoredImage {
        var bytes: [UInt8]
        var usedAt: Date
    }

    public func putImage(_ reference: ImageReference, bytes: [UInt8], now: Date) -> Bool {
        storage.withLock { storage in
            if storage.images[reference.sha256] != nil {
                storage.images[reference.sha256]?.usedAt = now
                return false
            }
            storage.images[reference.sha256] = StoredImage(bytes: bytes, usedAt: now)
            return true
        }
    }

    public func imageBytes(sha256: String) -> [UInt8]? {
        storage.withLock { $0.images[sha256]?.bytes }
    }

    public func markImageUsed(sha256: String, now: Date) -> Bool {
        storage.withLock { storage in
            guard storage.images[sha256] != nil else { return false }
            storage.images[sha256]?.usedAt = now
            return true
        }
    }

    public func deleteUnusedImages(unusedFor: TimeInterval, now: Date) -> Int {
        storage.withLock { storage in
            var named = Set<String>()
            for job in storage.jobs.values {
                if let image = job.spec.image { named.insert(image.sha256) }
                if let image = job.spec.lastImage { named.insert(image.sha256) }
            }
            let cutoff = now.addingTimeInterval(-unusedFor)
            let unused = storage.images.filter { !named.contains($0.key) && $0.value.usedAt < cutoff }.keys
            for sha256 in unused { storage.images[sha256] = nil }
            return unused.count
        }
    }

    public func job(id: String) -> Job? {
        storage.withLock { $0.jobs[id] }
    }

    public func jobs(state: JobState?, limit: Int, before: String?) throws -> [Job] {
        try storage.withLock { storage in
            var candidates = storage.jobs.values.filter { state == nil || $0.state == state }
            if let before {
                guard let cursor = storage.jobs[before] else { throw JobStoreError.unknownCursor(before) }
                candidates = candidates.filter { Job.listsBefore(cursor, $0) }
            }
            return Array(candidates.sorted(by: Job.listsBefore).prefix(max(limit, 0)))
        }
    }

    public func jobs(batchID: String) -> [Job] {
        storage.withLock { storage in
            storage.jobs.values.filter { $0.batchID == batchID }.sorted { Job.listsBefore($1, $0) }
        }
    }

    public func jobs(matching query: JobQuery) throws -> [Job] {
        try storage.withLock { storage in
            var candidates = storage.jobs.values.filter(query.admits)
            if let after = query.after {
                guard let cursor = storage.jobs[after], query.owner == nil || cursor.owner == query.owner else {
                    throw JobStoreError.unknownCursor(after)
                }
                candidates = candidates.filter {
                    query.order == .newestFirst ? Job.listsBefore(cursor, $0) : Job.listsBefore($0, cursor)
                }
            }
            let sorted = candidates.sorted {
                query.order == .newestFirst ? Job.listsBefore($0, $1) : Job.listsBefore($1, $0)
            }
            return Array(sorted.prefix(max(query.limit, 0)))
        }
    }

    public func counts(owner: String) -> [JobState: Int] {
        storage.withLock { storage in
            var counts = Dictionary(uniqueKeysWithValues: JobState.allCases.map { ($0, 0) })
            for job in storage.jobs.values where job.owner == owner { counts[job.state, default: 0] += 1 }
            return counts
        }
    }

    public func delete(id: String) -> JobDeletion {
        mutate { storage in
            guard let job = storage.jobs[id] else { return .notFound }
            guard job.state.isTerminal else { return .notFinished(job) }
            storage.jobs[id] = nil
            storage.events[id] = nil
            storage.requestDigests[id] = nil
            if let key = job.idempotencyKey, storage.jobIDsByIdempotencyKey[key] == id {
                storage.jobIDsByIdempotencyKey[key] = nil
            }
            return .deleted(job)
        }
    }

    public func counts() -> [JobState: Int] {
        storage.withLock { storage in
            var counts = Dictionary(uniqueKeysWithValues: JobState.allCases.map { ($0, 0) })
            for job in storage.jobs.values { counts[job.state, default: 0] += 1 }
            return counts
        }
    }

    public func claim(
        owner: String, slot: String, leaseExpiresAt: Date, now: Date, affinity: ClaimAffinity?
    ) -> (job: Job, lease: Lease)? {
        mutate { storage in
            let queued = storage.jobs.values.filter({ $0.state == .queued }).sorted(by: Job.claimsBefore)
            guard var job = queued.first else { return nil }
            if let affinity, !affinity.takesHead(headKey: job.spec.loraKey),
                let index = queued.firstIndex(where: {
                    $0.priority == job.priority && $0.spec.loraKey == affinity.loraKey
                })
            {
                let ahead = queued[..<index].map(\.id)
                let oldest = ahead.compactMap { storage.passedOver[$0] }.min()
                if affinity.mayPassOver(oldestPassedOver: oldest, now: now) {
                    for id in ahead where storage.passedOver[id] == nil { storage.passedOver[id] = now }
                    job = queued[index]
                }
            }
            storage.passedOver[job.id] = nil
            let (lease, event) = job.start(owner: owner, slot: slot, leaseExpiresAt: leaseExpiresAt, now: now)
            storage.jobs[job.id] = job
            storage.log(event, for: job.id, now: now)
            return (job, lease)
        }
    }

    public func renew(_ lease: Lease, until: Date, progress: JobProgress?, now: Date) -> Bool {
        mutate { storage in
            storage.update(lease, now: now) { job in
                job.renew(until: until, progress: progress)
                return nil
            }
        }
    }

    public func complete(_ lease: Lease, outputs: JobOutputs, now: Date) -> Bool {
        mutate { $0.update(lease, now: now) { $0.succeed(outputs: outputs, now: now) } }
    }

    public func fail(_ lease: Lease, code: String, message: String, retry: Bool, memorySaving: Bool, now: Date) -> Bool
    {
        mutate { storage in
            storage.update(lease, now: now) {
                $0.fail(code: code, message: message, retry: retry, memorySaving: memorySaving, now: now)
            }
        }
    }

    public func release(_ lease: Lease, now: Date) -> Bool {
        mutate { $0.update(lease, now: now) { $0.release(now: now) } }
    }

    public func finishCancelled(_ lease: Lease, now: Date) -> Bool {
        mutate { $0.update(lease, now: now) { $0.finishCancelled(now: now) } }
    }

    public func cancel(id: String, now: Date) -> Job? {
        mutate { storage in
            guard var job = storage.jobs[id] else { return nil }
            if let event = job.cancel(now: now) {
                storage.jobs[id] = job
                storage.log(event, for: id, now: now)
            }
            return job
        }
    }

    public func recoverExpired(now: Date, maxAttempts: Int) -> [Job] {
        mutate { storage in
            let expired = storage.jobs.values.filter { job in
                job.state == .running && job.leaseExpiresAt.map { $0 < now.storedPrecision } ?? true
            }
            return storage.recover(
                expired.sorted(by: Job.claimsBefore).map(\.id), maxAttempts: maxAttempts, now: now,
                because: { "the lease of \($0.leaseOwner ?? "?") expired" })
        }
    }

    public func recoverOwned(by owner: String, now: Date, maxAttempts: Int) -> [Job] {
        mutate { storage in
            let owned = storage.jobs.values.filter { $0.isOwned(by: owner) }
            return storage.recover(
                owned.sorted(by: Job.claimsBefore).map(\.id), maxAttempts: maxAttempts, now: now,
                because: { "\($0.leaseOwner ?? owner) restarted" })
        }
    }

    public func events(jobID: String) -> [JobEvent] {
        storage.withLock { $0.events[jobID] ?? [] }
    }

    public func appendEvent(jobID: String, kind: String, message: String?, now: Date) throws {
        try mutate { storage in
            guard storage.jobs[jobID] != nil else { throw JobStoreError.unknownJob(jobID) }
            storage.log(PendingEvent(kind: kind, message: message), for: jobID, now: now)
        }
    }
}
