import Foundation
import Testing

@testable import ReelStore

/// Cancelling queued, running and finished jobs, and never reviving a cancelled one, for both stores.
@Suite struct CancelTests {
    @Test(arguments: StoreKind.allCases)
    func cancellingAQueuedJobEndsItAtOnce(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.add("j1")
            let job = try #require(await store.cancel(id: "j1", now: at(5)))
            #expect(job.state == .cancelled && job.finishedAt == at(5) && !job.cancelRequested)
            #expect(try await store.job(id: "j1") == job)
            #expect(try await store.claim(owner: slot0, slot: slot0, leaseExpiresAt: at(99), now: at(6)) == nil)
            #expect(try await store.eventKinds("j1") == ["queued", "cancelled"])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func cancellingARunningJobFlagsItUntilItsWorkerStops(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.add("j1")
            let (_, lease) = try await store.claimNext(at: at(0))
            let flagged = try #require(await store.cancel(id: "j1", now: at(5)))
            #expect(flagged.state == .running && flagged.cancelRequested && flagged.finishedAt == nil)
            #expect(flagged.leaseOwner == slot0)
            // Asking again changes nothing and logs nothing.
            #expect(try await store.cancel(id: "j1", now: at(6)) == flagged)
            // The worker still holds its lease, and may renew it until it stops.
            #expect(try await store.renew(lease, until: at(90), progress: nil, now: at(7)))
            #expect(try await store.finishCancelled(lease, now: at(8)))
            let job = try #require(await store.job(id: "j1"))
            #expect(job.state == .cancelled && job.finishedAt == at(8) && job.leaseOwner == nil)
            #expect(try await store.eventKinds("j1") == ["queued", "started", "cancel_requested", "cancelled"])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func cancellingAFinishedJobChangesNothing(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            for (index, id) in ["ok", "bad", "gone"].enumerated() { try await store.add(id, at: at(Double(index))) }
            let (ok, okLease) = try await store.claimNext(at: at(10))
            #expect(try await store.complete(okLease, outputs: outputs(), now: at(11)))
            let (bad, badLease) = try await store.claimNext(at: at(12))
            #expect(
                try await store.fail(badLease, code: "e", message: "m", retry: false, memorySaving: false, now: at(13)))
            _ = try await store.cancel(id: "gone", now: at(14))
            #expect([ok.id, bad.id] == ["ok", "bad"])
            for id in ["ok", "bad", "gone"] {
                let before = try #require(await store.job(id: id))
                let events = try await store.events(jobID: id)
                #expect(try await store.cancel(id: id, now: at(20)) == before)
                #expect(try await store.job(id: id) == before)
                #expect(try await store.events(jobID: id) == events)
            }
            #expect(try await store.cancel(id: "missing", now: at(20)) == nil)
        }
    }

    enum Ending: String, CaseIterable, CustomTestStringConvertible {
        case failWithRetry, release, recoverExpired, recoverOwned
        var testDescription: String { rawValue }
    }

    @Test(arguments: StoreKind.allCases, Ending.allCases)
    func aJobWhoseCancelWasRequestedEndsCancelledNotQueued(_ kind: StoreKind, _ ending: Ending) async throws {
        try await withStore(kind) { store in
            try await store.add("j1")
            let (_, lease) = try await store.claimNext(at: at(0), for: 10)
            _ = try await store.cancel(id: "j1", now: at(1))
            switch ending {
            case .failWithRetry:
                #expect(
                    try await store.fail(lease, code: "oom", message: "m", retry: true, memorySaving: true, now: at(2)))
            case .release:
                #expect(try await store.release(lease, now: at(2)))
            case .recoverExpired:
                #expect(try await store.recoverExpired(now: at(20), maxAttempts: 3).map(\.id) == ["j1"])
            case .recoverOwned:
                #expect(try await store.recoverOwned(by: node, now: at(2), maxAttempts: 3).map(\.id) == ["j1"])
            }
            let job = try #require(await store.job(id: "j1"))
            #expect(job.state == .cancelled && job.finishedAt != nil && job.leaseOwner == nil)
            #expect(try await store.eventKinds("j1").last == "cancelled")
            // Nothing brings it back.
            #expect(try await store.claim(owner: slot0, slot: slot0, leaseExpiresAt: at(999), now: at(30)) == nil)
            #expect(try await store.recoverExpired(now: at(1000), maxAttempts: 3).isEmpty)
            #expect(try await store.recoverOwned(by: node, now: at(1000), maxAttempts: 3).isEmpty)
            #expect(
                try await !store.fail(lease, code: "x", message: "y", retry: true, memorySaving: false, now: at(31)))
            #expect(try await store.state("j1") == .cancelled)
        }
    }
}
