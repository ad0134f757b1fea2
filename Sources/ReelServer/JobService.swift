import Foundation
import ReelCore
import ReelScheduler
import ReelStore

/// The application layer between HTTP and the store: validates submissions, enqueues and cancels jobs, and tells
/// the scheduler and event subscribers about it. Knows nothing of HTTP; its errors are `ReelError`s.
public final class JobService: Sendable {
    public let store: any JobStore
    public let scheduler: Scheduler
    /// The model every job of this server runs with.
    public let model: ModelInfo
    public let limits: GenerationLimits
    /// The prompt styles jobs may name.
    public let styles: StyleLibrary

    public init(
        store: any JobStore, scheduler: Scheduler, model: ModelInfo, limits: GenerationLimits = .standard,
        styles: StyleLibrary = .builtIn
    ) {
        self.store = store
        self.scheduler = scheduler
        self.model = model
        self.limits = limits
        self.styles = styles
    }

    /// A service for the scheduler's model (`scheduler.configuration.model`), resolved once here.
    public convenience init(
        store: any JobStore, scheduler: Scheduler, limits: GenerationLimits = .standard, styles: StyleLibrary = .builtIn
    ) throws(ReelError) {
        let model = try ModelCatalog.resolve(scheduler.configuration.model)
        self.init(store: store, scheduler: scheduler, model: model, limits: limits, styles: styles)
    }

    /// Validates and enqueues a job. With an idempotency key already used for the same body, returns that job
    /// with `created == false`; for a different body, throws a `conflict`.
    public func submit(body: JobSubmission, idempotencyKey: String?) async throws -> (job: Job, created: Bool) {
        let spec = try resolve(body)
        let new = NewJob(
            spec: spec, priority: body.priority ?? 0, idempotencyKey: idempotencyKey,
            requestDigest: idempotencyKey == nil ? nil : body.digest)
        let result: (job: Job, created: Bool)
        do {
            result = try await store.enqueue(new, now: Date())
        } catch let error as JobStoreError where error.code == .idempotencyConflict {
            throw ReelError(.conflict, field: "Idempotency-Key", error.message)
        }
        if result.created {
            scheduler.jobsEnqueued()
            scheduler.bus.publish(
                ServerEvent(
                    kind: JobEvent.Kind.queued.rawValue, job: result.job.id, state: .queued,
                    at: result.job.createdAt))
        }
        return result
    }

    /// Cancels a job: a queued one at once, a running one at its worker's next step. A finished job is returned
    /// unchanged. Throws `notFound` for an unknown id.
    public func cancel(id: String) async throws -> Job {
        let before = try await store.job(id: id)
        guard let job = try await store.cancel(id: id, now: Date()) else { throw ReelError.noJob(id) }
        if job.state == .cancelled && before?.state != .cancelled {
            scheduler.bus.publish(
                ServerEvent(
                    kind: JobEvent.Kind.cancelled.rawValue, job: job.id, state: .cancelled,
                    attempt: job.attempts == 0 ? nil : job.attempts, message: "cancelled while queued",
                    at: job.finishedAt ?? Date()))
        } else if job.state == .running && job.cancelRequested {
            scheduler.requestCancel(jobID: job.id)
        }
        return job
    }

    /// The job with this id; throws `notFound` when there is none.
    public func job(id: String) async throws -> Job {
        guard let job = try await store.job(id: id) else { throw ReelError.noJob(id) }
        return job
    }

    /// Validation alone: the spec a submission would run with, or the error that names what is wrong.
    public func resolve(_ body: JobSubmission) throws(ReelError) -> GenerationSpec {
        try resolve(SpecRow(request: body.generationRequest, model: body.model, priority: body.priority))
    }

    /// Validation of a batch row or a submission: the model, the priority range, then the spec itself.
    public func resolve(_ row: SpecRow) throws(ReelError) -> GenerationSpec {
        if let model = row.model, model != self.model.name {
            throw .invalid(
                "model",
                "this server runs the model '\(self.model.name)', not '\(model)'; leave model out or give that name")
        }
        if let priority = row.priority, !JobSubmission.priorityRange.contains(priority) {
            throw .invalid(
                "priority",
                "priority must be between \(JobSubmission.priorityRange.lowerBound) and "
                    + "\(JobSubmission.priorityRange.upperBound), not \(priority)")
        }
        return try Validation.resolve(row.request, model: model, limits: limits, styles: styles)
    }
}

extension ReelError {
    static func noJob(_ id: String) -> ReelError {
        ReelError(.notFound, "no job \(id); list jobs with GET /v1/jobs")
    }
}
