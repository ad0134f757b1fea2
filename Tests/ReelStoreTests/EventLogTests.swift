import Foundation
import ReelCore
import Testing

@testable import ReelStore

/// Every state change logs an event in order; progress does not, for both stores.
@Suite struct EventLogTests {
    @Test(arguments: StoreKind.allCases)
    func aJobsLifeIsLoggedInOrder(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.add("j1", at: at(0))
            try await store.add("j2", at: at(0.5))
            let (_, lease1) = try await store.claimNext(owner: slot0, slot: slot0, at: at(1))
            #expect(
                try await store.renew(
                    lease1, until: at(90), progress: JobProgress(stage: "denoise", step: 1, total: 30), now: at(2)))
            #expect(
                try await store.fail(
                    lease1, code: "oom", message: "CUDA out of memory", retry: true, memorySaving: true, now: at(3)))
            let (_, lease2) = try await store.claimNext(owner: slot1, slot: slot1, at: at(4))
            #expect(try await store.complete(lease2, outputs: outputs(), now: at(5)))

            let events = try await store.events(jobID: "j1")
            #expect(events.map(\.kind) == ["queued", "started", "requeued", "started", "succeeded"])
            #expect(events.map(\.at) == [at(0), at(1), at(3), at(4), at(5)])
            #expect(events.allSatisfy { $0.jobID == "j1" })
            #expect(zip(events, events.dropFirst()).allSatisfy { $0.sequence < $1.sequence })
            #expect(events[1].message == "attempt 1 on \(slot0)")
            #expect(events[3].message == "attempt 2 on \(slot1)")
            #expect(
                events[2].message?.contains("oom") == true && events[2].message?.contains("CUDA out of memory") == true)
            #expect(try await store.eventKinds("j2") == ["queued"])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func failuresReleasesAndCancelsAreLoggedWithTheirReasons(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            for (index, id) in ["failed", "released", "cancelled"].enumerated() {
                try await store.add(id, at: at(Double(index) / 10))
            }
            let (_, failLease) = try await store.claimNext(at: at(1))
            #expect(
                try await store.fail(
                    failLease, code: "bad_spec", message: "too many frames", retry: false, memorySaving: false,
                    now: at(2)))
            let (_, releaseLease) = try await store.claimNext(at: at(3))
            #expect(try await store.release(releaseLease, now: at(4)))
            _ = try await store.cancel(id: "cancelled", now: at(5))

            let failed = try await store.events(jobID: "failed")
            #expect(failed.map(\.kind) == ["queued", "started", "failed"])
            #expect(
                failed.last?.message?.contains("bad_spec") == true
                    && failed.last?.message?.contains("too many frames") == true)
            let released = try await store.events(jobID: "released")
            #expect(released.map(\.kind) == ["queued", "started", "requeued"])
            #expect(released.last?.message?.contains("released") == true)
            #expect(try await store.eventKinds("cancelled") == ["queued", "cancelled"])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func appendEventAddsToTheLog(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.add("j1")
            try await store.appendEvent(jobID: "j1", kind: "progress", message: "decoding", now: at(7))
            try await store.appendEvent(jobID: "j1", kind: "note", message: nil, now: at(8))
            let events = try await store.events(jobID: "j1")
            #expect(events.map(\.kind) == ["queued", "progress", "note"])
            #expect(events[1].message == "decoding" && events[1].at == at(7) && events[2].message == nil)
            #expect(zip(events, events.dropFirst()).allSatisfy { $0.sequence < $1.sequence })

            let error = await #expect(throws: JobStoreError.self) {
                try await store.appendEvent(jobID: "missing", kind: "note", message: nil, now: at(9))
            }
            #expect(error?.code == .notFound)
            #expect(try await store.events(jobID: "missing").isEmpty)
        }
    }
}
