import Foundation
import ReelCore

/// An event a transition logs, before the store numbers it.
struct PendingEvent: Sendable, Equatable {
    var kind: String
    var message: String?

    init(_ kind: JobEvent.Kind, _ message: String? = nil) {
        self.kind = kind.rawValue
        self.message = message
    }

    init(kind: String, message: String?) {
        self.kind = kind
        self.message = message
    }
}

/// The rules of a job's life, as pure transitions on a `Job` value. Both stores apply exactly these inside one
/// atomic step (a lock or a write transaction), so they cannot drift apart; each returns the event to log.
extension Job {
    /// The code a job fails with when recovery finds it has used every attempt.
    static let attemptsExhaustedCode = "attempts_exhausted"

    init(_ new: NewJob, now: Date) {
        self.init(
            id: new.id, spec: new.spec, priority: new.priority, createdAt: now.storedPrecision,
            idempotencyKey: new.idempotencyKey,
            batchID: new.batchID, owner: new.owner)
    }

    /// Whether `lease` is the one that may finish this job's current attempt.
    func isHeld(by lease: Lease) -> Bool {
        id == lease.jobID && state == .running && leaseOwner == lease.owner && attempts == lease.attempt
    }

    /// Whether a node called `owner` (or one of its slots, `owner/…`) holds this running job.
    func isOwned(by owner: String) -> Bool {
        guard state == .running, let leaseOwner else { return false }
        return leaseOwner == owner || leaseOwner.hasPrefix(owner + "/")
    }

    /// Claim order: higher priority, then older, then lower id (by UTF-8 bytes, as SQLite's BINARY collation).
    static func claimsBefore(_ a: Job, _ b: Job) -> Bool {
        if a.priority != b.priority { return a.priority > b.priority }
        if a.createdAt != b.createdAt { return a.createdAt < b.createdAt }
        return a.id.utf8.lexicographicallyPrecedes(b.id.utf8)
    }

    /// Listing order: newest first, then higher id.
    static func listsBefore(_ a: Job, _ b: Job) -> Bool {
        if a.createdAt != b.createdAt { return a.createdAt > b.createdAt }
        return b.id.utf8.lexicographicallyPrecedes(a.id.utf8)
    }

    mutating func start(owner: String, slot: String, leaseExpiresAt: Date, now: Date) -> (Lease, PendingEvent) {
        state = .running
        attempts += 1
        leaseOwner = owner
        self.leaseExpiresAt = leaseExpiresAt.storedPrecision
        self.slot = slot
        node = owner.split(separator: "/", maxSplits: 1).first.map(String.init) ?? owner
        startedAt = now.storedPrecision
        progress = nil
        return (
            Lease(jobID: id, owner: owner, attempt: attempts), PendingEvent(.started, "attempt \(attempts) on \(slot)")
        )
    }

    mutating func renew(until: Date, progress: JobProgress?) {
        leaseExpiresAt = until.storedPrecision
        if let progress { self.progress = progress }
    }

    mutating func succeed(outputs: JobOutputs, now: Date) -> PendingEvent {
        state = .succeeded
        finishedAt = now.storedPrecision
        self.outputs = outputs
        clearLease()
        return PendingEvent(.succeeded, "attempt \(attempts) wrote \(outputs.video)")
    }

    mutating func fail(code: String, message: String, retry: Bool, memorySaving: Bool, now: Date) -> PendingEvent {
        errorCode = code
        errorMessage = message
        if memorySaving { self.memorySaving = true }
        let what = "attempt \(attempts) failed: \(code): \(message)"
        guard retry else {
            state = .failed
            finishedAt = now.storedPrecision
            clearLease()
            return PendingEvent(.failed, what)
        }
        return requeue(because: what + (memorySaving ? "; retrying with memory saving" : "; retrying"), now: now)
    }

    mutating func release(now: Date) -> PendingEvent {
        let owner = leaseOwner ?? "its worker"
        attempts -= 1
        return requeue(because: "released by \(owner); the attempt does not count", now: now)
    }

    mutating func finishCancelled(now: Date) -> PendingEvent {
        state = .cancelled
        finishedAt = now.storedPrecision
        clearLease()
        return PendingEvent(.cancelled, "stopped during attempt \(attempts)")
    }

    /// Nil when the job is left unchanged: terminal, or running with a cancel already requested.
    mutating func cancel(now: Date) -> PendingEvent? {
        switch state {
        case .queued:
            state = .cancelled
            finishedAt = now.storedPrecision
            return PendingEvent(.cancelled, "cancelled while queued")
        case .running where !cancelRequested:
            cancelRequested = true
            return PendingEvent(.cancelRequested, "attempt \(attempts) on \(slot ?? "?") will stop")
        case .running, .succeeded, .failed, .cancelled:
            return nil
        }
    }

    /// Ends a running attempt whose worker is gone: `why` says how it was lost.
    mutating func recover(because why: String, maxAttempts: Int, now: Date) -> PendingEvent {
        if !cancelRequested && attempts >= maxAttempts {
            let last = errorCode.map { code in "; last error: \(code): \(errorMessage ?? "")" } ?? ""
            errorCode = Self.attemptsExhaustedCode
            errorMessage = "gave up after \(attempts) attempts (\(why))\(last)"
            state = .failed
            finishedAt = now.storedPrecision
            clearLease()
            return PendingEvent(.failed, "\(Self.attemptsExhaustedCode): \(errorMessage ?? "")")
        }
        return requeue(because: "attempt \(attempts) lost: \(why)", now: now)
    }

    /// Back to the queue, unless a cancel was requested: a cancelled job is never revived.
    private mutating func requeue(because why: String, now: Date) -> PendingEvent {
        clearLease()
        progress = nil
        if cancelRequested {
            state = .cancelled
            finishedAt = now.storedPrecision
            return PendingEvent(.cancelled, "cancel requested; \(why)")
        }
        state = .queued
        return PendingEvent(.requeued, why)
    }

    private mutating func clearLease() {
        leaseOwner = nil
        leaseExpiresAt = nil
    }
}

extension Date {
    /// This date as both stores keep it: a Double of seconds since 1970, the value a SQLite REAL column holds (well
    /// under a microsecond from the original). Rounding in both stores makes a job read back equal the one a
    /// method returned, whichever store it came from.
    var storedPrecision: Date { Date(timeIntervalSince1970: timeIntervalSince1970) }
}
