import Foundation
import ReelCore
import Testing

@testable import ReelStore

/// Enqueueing, idempotency, claim order, listing and counts, for both stores.
@Suite struct QueueTests {
    @Test(arguments: StoreKind.allCases)
    func enqueueKeepsTheJobAndItsSpec(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            var spec = makeSpec("a lighthouse at dusk", seed: .max)
            spec.guidance2 = nil
            let (job, created) = try await store.enqueue(
                NewJob(id: "j1", spec: spec, priority: 3, batchID: "b1"), now: at(0.123))
            #expect(created)
            #expect(job.state == .queued && job.attempts == 0 && job.priority == 3 && job.batchID == "b1")
            #expect(job.createdAt == at(0.123) && job.startedAt == nil && job.leaseOwner == nil)
            #expect(try await store.job(id: "j1") == job)
            #expect(try await store.job(id: "j1")?.spec == spec)
            #expect(try await store.job(id: "nope") == nil)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func datesFromAnyClockReadBackAsReturned(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            // Not a whole number of seconds since 1970 nor since 2001: the stores keep it to well under a microsecond.
            let now = Date(timeIntervalSinceReferenceDate: 771_000_000.123_456_789)
            let job = try await store.enqueue(newJob("j1"), now: now).job
            #expect(abs(job.createdAt.timeIntervalSince(now)) < 1e-6)
            #expect(try await store.job(id: "j1") == job)
            let (claimed, lease) = try #require(
                await store.claim(owner: slot0, slot: slot0, leaseExpiresAt: now + 30.000_1, now: now + 0.000_3))
            #expect(try await store.job(id: "j1") == claimed)
            #expect(try await store.renew(lease, until: now + 60.000_7, progress: nil, now: now + 1))
            let renewed = try #require(await store.job(id: "j1"))
            #expect(abs(try #require(renewed.leaseExpiresAt).timeIntervalSince(now + 60.000_7)) < 1e-6)
            let events = try await store.events(jobID: "j1")
            #expect(events.map(\.at) == [job.createdAt, claimed.startedAt])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func enqueueRejectsAnIDInUse(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.add("j1")
            let error = await #expect(throws: JobStoreError.self) {
                try await store.enqueue(newJob("j1"), now: at(1))
            }
            #expect(error?.code == .duplicateID)
            #expect(try await store.counts()[.queued] == 1)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func sameKeyAndDigestReturnsTheExistingJob(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let (first, created) = try await store.enqueue(newJob("j1", key: "k", digest: "d"), now: at(0))
            #expect(created)
            let (again, createdAgain) = try await store.enqueue(newJob("j2", key: "k", digest: "d"), now: at(5))
            #expect(!createdAgain)
            #expect(again == first)
            #expect(try await store.job(id: "j2") == nil)
            #expect(try await store.eventKinds("j1") == ["queued"])
            // Other keys, and jobs without a key, are independent.
            #expect(try await store.enqueue(newJob("j3", key: "other", digest: "d"), now: at(6)).created)
            #expect(try await store.enqueue(newJob("j4"), now: at(7)).created)
            #expect(try await store.enqueue(newJob("j5"), now: at(8)).created)
            #expect(try await store.counts()[.queued] == 4)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func sameKeyWithAnotherDigestIsAConflictNamingTheKey(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.enqueue(newJob("j1", key: "upload-42", digest: "d1"), now: at(0))
            let error = await #expect(throws: JobStoreError.self) {
                try await store.enqueue(newJob("j2", key: "upload-42", digest: "d2"), now: at(1))
            }
            #expect(error?.code == .idempotencyConflict)
            #expect(error?.message.contains("upload-42") == true)
            #expect(try await store.job(id: "j2") == nil)
            // A missing digest differs from a present one.
            await #expect(throws: JobStoreError.self) {
                try await store.enqueue(newJob("j3", key: "upload-42"), now: at(2))
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func enqueueAllAddsEveryJobOrNone(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.enqueue(newJob("old", key: "k", digest: "d1"), now: at(0))
            let bad = [
                newJob("a", batch: "b"), newJob("b", key: "k", digest: "d2", batch: "b"), newJob("c", batch: "b"),
            ]
            await #expect(throws: JobStoreError.self) { try await store.enqueueAll(bad, now: at(1)) }
            #expect(try await store.counts()[.queued] == 1)
            #expect(try await store.job(id: "a") == nil)
            #expect(try await store.events(jobID: "a").isEmpty)

            let good = [
                newJob("a", batch: "b"), newJob("b", key: "k", digest: "d1", batch: "b"), newJob("c", batch: "b"),
            ]
            let jobs = try await store.enqueueAll(good, now: at(2))
            #expect(jobs.map(\.id) == ["a", "old", "c"])
            #expect(try await store.counts()[.queued] == 3)
            #expect(try await store.jobs(batchID: "b").map(\.id) == ["a", "c"])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func claimTakesHighestPriorityThenOldestThenLowestID(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.add("z-low-old", priority: 0, at: at(0))
            try await store.add("m-high-new", priority: 5, at: at(10))
            // One millisecond apart, ids in the opposite order: age wins.
            try await store.add("y-high-old", priority: 5, at: at(2.000))
            try await store.add("x-high-older", priority: 5, at: at(1.999))
            try await store.add("b-high-tie", priority: 5, at: at(10))
            try await store.add("neg", priority: -1, at: at(-100))
            #expect(
                try await store.drain(at: at(20))
                    == ["x-high-older", "y-high-old", "b-high-tie", "m-high-new", "z-low-old", "neg"])
            #expect(try await store.claim(owner: slot0, slot: slot0, leaseExpiresAt: at(80), now: at(20)) == nil)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func claimStartsAnAttemptUnderANewLease(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.add("j1")
            let (job, lease) = try await store.claimNext(owner: slot1, slot: slot1, at: at(5), for: 30)
            #expect(lease == Lease(jobID: "j1", owner: slot1, attempt: 1))
            #expect(job.state == .running && job.attempts == 1 && job.slot == slot1)
            #expect(job.leaseOwner == slot1 && job.leaseExpiresAt == at(35) && job.startedAt == at(5))
            #expect(try await store.job(id: "j1") == job)

            // The next attempt records its own start and starts without the last attempt's progress.
            #expect(
                try await store.renew(
                    lease, until: at(60), progress: JobProgress(stage: "denoise", step: 3, total: 30), now: at(10)))
            #expect(
                try await store.fail(
                    lease, code: "oom", message: "out of memory", retry: true, memorySaving: true, now: at(11)))
            let (second, secondLease) = try await store.claimNext(owner: slot0, slot: slot0, at: at(20))
            #expect(secondLease.attempt == 2 && second.attempts == 2 && second.startedAt == at(20))
            #expect(second.progress == nil && second.slot == slot0)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func concurrentClaimersNeverShareAJob(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let ids = (0..<200).map { String(format: "job-%03d", $0) }
            _ = try await store.enqueueAll(ids.map { newJob($0) }, now: t0)
            let claimed = try await claimConcurrently([store], claimers: 8, at: at(1))
            #expect(claimed.count == 200)
            #expect(Set(claimed) == Set(ids))
            #expect(try await store.counts()[.running] == 200)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func listingPagesNewestFirstByKeyset(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            for i in 0..<7 { try await store.add("j\(i)", at: at(Double(i))) }
            try await store.add("j7-tie-a", at: at(3))  // same time as j3: ids break the tie
            let page1 = try await store.jobs(state: nil, limit: 3, before: nil)
            #expect(page1.map(\.id) == ["j6", "j5", "j4"])
            // A job added meanwhile neither shifts nor repeats the next pages.
            try await store.add("new", at: at(100))
            let page2 = try await store.jobs(state: nil, limit: 3, before: page1.last?.id)
            #expect(page2.map(\.id) == ["j7-tie-a", "j3", "j2"])
            let page3 = try await store.jobs(state: nil, limit: 3, before: page2.last?.id)
            #expect(page3.map(\.id) == ["j1", "j0"])
            #expect(try await store.jobs(state: nil, limit: 3, before: "j0").isEmpty)
            #expect(try await store.jobs(state: nil, limit: 0, before: nil).isEmpty)

            // Filtered by state; the cursor may be a job of another state.
            _ = try await store.cancel(id: "j5", now: at(200))
            _ = try await store.cancel(id: "j2", now: at(200))
            #expect(try await store.jobs(state: .cancelled, limit: 10, before: nil).map(\.id) == ["j5", "j2"])
            #expect(try await store.jobs(state: .queued, limit: 2, before: "j5").map(\.id) == ["j4", "j7-tie-a"])
            #expect(try await store.jobs(state: .succeeded, limit: 10, before: nil).isEmpty)

            let error = await #expect(throws: JobStoreError.self) {
                try await store.jobs(state: nil, limit: 3, before: "missing")
            }
            #expect(error?.code == .notFound)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func batchJobsComeOldestFirst(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.add("c", batch: "b1", at: at(3))
            try await store.add("a", batch: "b1", at: at(1))
            try await store.add("x", batch: "b2", at: at(2))
            try await store.add("b", batch: "b1", at: at(1))
            try await store.add("none", at: at(0))
            #expect(try await store.jobs(batchID: "b1").map(\.id) == ["a", "b", "c"])
            #expect(try await store.jobs(batchID: "b2").map(\.id) == ["x"])
            #expect(try await store.jobs(batchID: "b3").isEmpty)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func countsHaveEveryState(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            #expect(try await store.counts() == [.queued: 0, .running: 0, .succeeded: 0, .failed: 0, .cancelled: 0])
            for i in 0..<5 { try await store.add("j\(i)", at: at(Double(i))) }
            let (_, lease) = try await store.claimNext(at: at(10))
            #expect(try await store.complete(lease, outputs: outputs(), now: at(11)))
            _ = try await store.claimNext(at: at(12))
            _ = try await store.cancel(id: "j4", now: at(13))
            #expect(try await store.counts() == [.queued: 2, .running: 1, .succeeded: 1, .failed: 0, .cancelled: 1])
        }
    }
}

func outputs(_ directory: String = "/data/out/j") -> JobOutputs {
    JobOutputs(
        directory: directory, video: directory + "/video.mp4", metadata: directory + "/metadata.json",
        framesDirectory: directory + "/frames", frameCount: 81, secondsPerStage: ["encode": 1.5, "denoise": 41.25])
}
