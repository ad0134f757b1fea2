import Foundation
import ReelCore
import Testing

@testable import ReelStore

/// Renewing and ending attempts, and fencing off leases that are no longer current, for both stores.
@Suite struct LeaseTests {
    @Test(arguments: StoreKind.allCases)
    func renewExtendsTheLeaseAndRecordsProgress(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.add("j1")
            let (_, lease) = try await store.claimNext(at: at(0), for: 30)
            let progress = JobProgress(stage: "denoise", step: 12, total: 30)
            #expect(try await store.renew(lease, until: at(90), progress: progress, now: at(20)))
            var job = try #require(await store.job(id: "j1"))
            #expect(job.leaseExpiresAt == at(90) && job.progress == progress && job.state == .running)
            // Without progress, the last progress stays.
            #expect(try await store.renew(lease, until: at(120), progress: nil, now: at(60)))
            job = try #require(await store.job(id: "j1"))
            #expect(job.leaseExpiresAt == at(120) && job.progress == progress)
            // Progress is not logged.
            #expect(try await store.eventKinds("j1") == ["queued", "started"])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func completeRecordsOutputsAndEndsTheLease(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.add("j1")
            let (_, lease) = try await store.claimNext(at: at(0))
            #expect(try await store.complete(lease, outputs: outputs(), now: at(50)))
            let job = try #require(await store.job(id: "j1"))
            #expect(job.state == .succeeded && job.finishedAt == at(50) && job.outputs == outputs())
            #expect(job.leaseOwner == nil && job.leaseExpiresAt == nil && job.attempts == 1 && job.slot == slot0)
            // A finished job's lease is no longer current.
            #expect(try await !store.complete(lease, outputs: outputs("/elsewhere"), now: at(51)))
            #expect(try await store.job(id: "j1") == job)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aStaleLeaseChangesNothing(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.add("j1")
            let (_, first) = try await store.claimNext(at: at(0), for: 10)
            _ = try await store.recoverExpired(now: at(11), maxAttempts: 5)
            let (_, second) = try await store.claimNext(owner: slot1, slot: slot1, at: at(12))
            let stale = [
                first,  // an earlier attempt
                Lease(jobID: "j1", owner: slot0, attempt: 2),  // another owner
                Lease(jobID: "j1", owner: slot1, attempt: 1),  // the right owner, an earlier attempt
                Lease(jobID: "other", owner: slot1, attempt: 2),  // no such job
            ]
            let before = try #require(await store.job(id: "j1"))
            let eventsBefore = try await store.events(jobID: "j1")
            for lease in stale {
                let progress = JobProgress(stage: "decode", step: 1, total: 1)
                #expect(try await !store.renew(lease, until: at(999), progress: progress, now: at(13)))
                #expect(try await !store.complete(lease, outputs: outputs(), now: at(13)))
                #expect(
                    try await !store.fail(lease, code: "x", message: "y", retry: true, memorySaving: true, now: at(13)))
                #expect(
                    try await !store.fail(
                        lease, code: "x", message: "y", retry: false, memorySaving: false, now: at(13)))
                #expect(try await !store.release(lease, now: at(13)))
                #expect(try await !store.finishCancelled(lease, now: at(13)))
            }
            #expect(try await store.job(id: "j1") == before)
            #expect(try await store.events(jobID: "j1") == eventsBefore)
            // The current lease still works.
            #expect(try await store.complete(second, outputs: outputs(), now: at(14)))
        }
    }

    @Test(arguments: StoreKind.allCases)
    func failWithRetryRequeuesAndKeepsTheLastError(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.add("j1")
            let (_, lease1) = try await store.claimNext(at: at(0))
            #expect(
                try await store.fail(
                    lease1, code: "oom", message: "CUDA out of memory", retry: true, memorySaving: true, now: at(5)))
            var job = try #require(await store.job(id: "j1"))
            #expect(job.state == .queued && job.attempts == 1 && job.leaseOwner == nil && job.leaseExpiresAt == nil)
            #expect(job.errorCode == "oom" && job.errorMessage == "CUDA out of memory" && job.memorySaving)
            #expect(job.finishedAt == nil)

            // A later retry without memory saving does not clear the flag.
            let (_, lease2) = try await store.claimNext(at: at(10))
            #expect(
                try await store.fail(
                    lease2, code: "engine_crashed", message: "exit 139", retry: true, memorySaving: false, now: at(15)))
            job = try #require(await store.job(id: "j1"))
            #expect(job.state == .queued && job.attempts == 2 && job.memorySaving)
            #expect(job.errorCode == "engine_crashed" && job.errorMessage == "exit 139")
        }
    }

    @Test(arguments: StoreKind.allCases)
    func failWithoutRetryFailsForGood(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.add("j1")
            let (_, lease) = try await store.claimNext(at: at(0))
            #expect(
                try await store.fail(
                    lease, code: "bad_spec", message: "width must be a multiple of 16", retry: false,
                    memorySaving: false, now: at(3)))
            let job = try #require(await store.job(id: "j1"))
            #expect(job.state == .failed && job.finishedAt == at(3) && job.leaseOwner == nil)
            #expect(
                job.errorCode == "bad_spec" && job.errorMessage == "width must be a multiple of 16" && !job.memorySaving
            )
            #expect(try await store.claim(owner: slot0, slot: slot0, leaseExpiresAt: at(99), now: at(4)) == nil)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func releaseRequeuesWithoutCountingTheAttempt(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.add("j1")
            let (_, lease) = try await store.claimNext(at: at(0))
            #expect(try await store.release(lease, now: at(5)))
            let job = try #require(await store.job(id: "j1"))
            #expect(job.state == .queued && job.attempts == 0 && job.leaseOwner == nil && job.leaseExpiresAt == nil)
            #expect(try await !store.release(lease, now: at(6)))
            let (_, again) = try await store.claimNext(at: at(10))
            #expect(again.attempt == 1)
        }
    }
}
