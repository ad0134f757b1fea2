import Foundation
import ReelCore
import Testing

@testable import ReelStore

/// Taking back the jobs of dead or restarted workers, for both stores.
@Suite struct RecoveryTests {
    @Test(arguments: StoreKind.allCases)
    func recoverExpiredRequeuesOnlyJobsWhoseLeaseHasPassed(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            for id in ["a", "b", "c", "d"] { try await store.add(id, at: at(0)) }
            let (_, leaseA) = try await store.claimNext(owner: slot0, slot: slot0, at: at(1), for: 9)  // until 10
            _ = try await store.claimNext(owner: slot1, slot: slot1, at: at(1), for: 10)  // until 11: exactly now
            let (_, leaseC) = try await store.claimNext(
                owner: "node-b/cuda:0", slot: "node-b/cuda:0", at: at(1), for: 5)
            #expect(try await store.renew(leaseC, until: at(60), progress: nil, now: at(5)))  // renewed in time

            let recovered = try await store.recoverExpired(now: at(11), maxAttempts: 3)
            #expect(recovered.map(\.id) == ["a"])
            let a = try #require(await store.job(id: "a"))
            #expect(recovered.first == a)
            #expect(a.state == .queued && a.attempts == 1 && a.leaseOwner == nil && a.leaseExpiresAt == nil)
            #expect(try await store.state("b") == .running)
            #expect(try await store.state("c") == .running)
            #expect(try await store.state("d") == .queued)
            // The dead worker's lease is fenced off.
            #expect(try await !store.complete(leaseA, outputs: outputs(), now: at(12)))
            #expect(try await store.recoverExpired(now: at(11), maxAttempts: 3).isEmpty)
            #expect(try await store.eventKinds("a") == ["queued", "started", "requeued"])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func recoverExpiredFailsAJobThatUsedEveryAttempt(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.add("j1")
            let (_, lease1) = try await store.claimNext(at: at(0), for: 10)
            #expect(
                try await store.fail(
                    lease1, code: "oom", message: "CUDA out of memory", retry: true, memorySaving: true, now: at(1)))
            _ = try await store.claimNext(at: at(2), for: 10)
            let recovered = try await store.recoverExpired(now: at(20), maxAttempts: 2)
            let job = try #require(recovered.first)
            #expect(recovered.count == 1)
            #expect(job.state == .failed && job.attempts == 2 && job.finishedAt == at(20) && job.leaseOwner == nil)
            #expect(job.errorCode == "attempts_exhausted")
            #expect(job.errorMessage?.contains("oom") == true)
            #expect(job.errorMessage?.contains("CUDA out of memory") == true)
            #expect(try await store.job(id: "j1") == job)
            #expect(try await store.eventKinds("j1") == ["queued", "started", "requeued", "started", "failed"])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func exhaustionWithoutAnEarlierErrorSaysSo(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.add("j1")
            _ = try await store.claimNext(at: at(0), for: 10)
            let job = try #require(await store.recoverExpired(now: at(20), maxAttempts: 1).first)
            #expect(job.state == .failed && job.errorCode == "attempts_exhausted")
            #expect(job.errorMessage?.contains("1 attempts") == true)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func recoverOwnedTakesBackANodeAndItsSlotsWhateverTheExpiry(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let owners = ["node-a", "node-a/cuda:0", "node-a/cuda:1", "node-ab/cuda:0", "node-b/cuda:0", "xnode-a"]
            for index in owners.indices { try await store.add("j\(index)", at: at(Double(index))) }
            var leases: [Lease] = []
            for owner in owners {
                leases.append(try await store.claimNext(owner: owner, slot: owner, at: at(10), for: 3600).lease)
            }
            #expect(leases.map(\.jobID) == owners.indices.map { "j\($0)" })

            let recovered = try await store.recoverOwned(by: node, now: at(11), maxAttempts: 3)
            #expect(recovered.map(\.id) == ["j0", "j1", "j2"])
            #expect(recovered.allSatisfy { $0.state == .queued && $0.leaseOwner == nil && $0.attempts == 1 })
            for id in ["j3", "j4", "j5"] { #expect(try await store.state(id) == .running) }
            #expect(try await !store.renew(leases[1], until: at(9999), progress: nil, now: at(12)))
            #expect(try await store.renew(leases[3], until: at(9999), progress: nil, now: at(12)))
            #expect(try await store.eventKinds("j1") == ["queued", "started", "requeued"])
            // Queued jobs are not running: nothing more to take back.
            #expect(try await store.recoverOwned(by: node, now: at(13), maxAttempts: 3).isEmpty)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func recoverOwnedFailsAJobThatUsedEveryAttempt(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.add("j1")
            _ = try await store.claimNext(owner: slot0, slot: slot0, at: at(0), for: 3600)
            let recovered = try await store.recoverOwned(by: node, now: at(5), maxAttempts: 1)
            let job = try #require(recovered.first)
            #expect(job.state == .failed && job.errorCode == "attempts_exhausted" && job.finishedAt == at(5))
            #expect(try await store.job(id: "j1") == job)
        }
    }
}
