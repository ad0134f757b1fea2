import Foundation
import ReelCore
import Testing

@testable import ReelStore

/// Batch manifests beside their jobs, for every store: added with the jobs in one transaction, read by id, imported
/// from the files of older versions, and copied by `StoreTransfer`.
@Suite struct BatchStoreTests {
    static func manifest(_ id: String = "batch_1", jobs: [String], at date: Date = t0) -> BatchManifest {
        BatchManifest(
            id: id, createdAt: date, source: "csv",
            accepted: jobs.enumerated().map { .init(row: $0.offset + 2, job: $0.element) },
            rejected: [.init(row: jobs.count + 2, column: "size", message: "size '65x64' is not a multiple of 16")],
            owner: "key-1")
    }

    @Test(arguments: StoreKind.allCases)
    func aBatchIsStoredWithItsJobsAndReadBackByID(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let manifest = Self.manifest(jobs: ["j1", "j2"], at: at(-50))
            let (stored, jobs) = try await store.enqueueBatch(
                manifest, jobs: [newJob("j1"), newJob("j2", batch: "something-else")], now: at(1.5))
            #expect(stored.createdAt == at(1.5), "the manifest is dated as its jobs are")
            #expect(stored.accepted == manifest.accepted && stored.rejected == manifest.rejected)
            #expect(stored.owner == "key-1" && stored.source == "csv")
            #expect(jobs.map(\.id) == ["j1", "j2"] && jobs.allSatisfy { $0.batchID == "batch_1" })
            #expect(jobs.allSatisfy { $0.createdAt == at(1.5) })
            #expect(try await store.batch(id: "batch_1") == stored)
            #expect(try await store.jobs(batchID: "batch_1").map(\.id) == ["j1", "j2"])
            #expect(try await store.eventKinds("j1") == ["queued"])
            #expect(try await store.batch(id: "batch_2") == nil)
            #expect(try await store.batch(id: "../../etc/passwd") == nil)

            // A batch of rejected rows only is a batch too.
            let empty = try await store.enqueueBatch(Self.manifest("batch_2", jobs: []), jobs: [], now: at(2))
            #expect(empty.jobs.isEmpty)
            #expect(try await store.batch(id: "batch_2") == empty.manifest)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aBatchThatCannotBeStoredWhollyLeavesNothingBehind(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.add("j1")
            // A job id in use: neither the manifest nor the other job is kept.
            let clash = await #expect(throws: JobStoreError.self) {
                try await store.enqueueBatch(
                    Self.manifest(jobs: ["j2", "j1"]), jobs: [newJob("j2"), newJob("j1")], now: at(1))
            }
            #expect(clash?.code == .duplicateID)
            #expect(try await store.batch(id: "batch_1") == nil)
            #expect(try await store.job(id: "j2") == nil)

            // A batch id in use: the new batch's jobs are not queued, and the first batch is unchanged.
            let first = try await store.enqueueBatch(Self.manifest(jobs: ["j3"]), jobs: [newJob("j3")], now: at(2))
                .manifest
            let again = await #expect(throws: JobStoreError.self) {
                try await store.enqueueBatch(Self.manifest(jobs: ["j4"]), jobs: [newJob("j4")], now: at(3))
            }
            #expect(again?.code == .duplicateID && again?.message.contains("batch") == true)
            #expect(try await store.job(id: "j4") == nil)
            #expect(try await store.batch(id: "batch_1") == first)
            #expect(try await store.counts()[.queued] == 2)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func anImportedManifestKeepsItsDateAndNeverReplacesABatch(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let old = Self.manifest("batch_old", jobs: ["j9"], at: Date(timeIntervalSince1970: 1_700_000_000.125))
            let added = try await store.importBatch(old)
            #expect(added)
            #expect(try await store.batch(id: "batch_old") == old)
            var changed = old
            changed.rejected = []
            #expect(try await store.importBatch(changed) == false)
            #expect(try await store.batch(id: "batch_old") == old)
            // An imported id is taken: a new batch cannot reuse it.
            await #expect(throws: JobStoreError.self) {
                try await store.enqueueBatch(Self.manifest("batch_old", jobs: []), jobs: [], now: at(1))
            }
        }
    }

    @Test func aCopiedStoreKeepsItsBatchesAndAStoreWithABatchIsNoTarget() async throws {
        try await withTemporaryDirectory { directory in
            let source = try SQLiteJobStore(path: directory.appendingPathComponent("a.sqlite").path)
            let batches = (1...3).map { Self.manifest("batch_\($0)", jobs: ["j\($0)"]) }
            for manifest in batches {
                _ = try await source.enqueueBatch(manifest, jobs: [newJob(manifest.accepted[0].job)], now: at(0))
            }
            #expect(try await source.importBatch(Self.manifest("batch_0", jobs: [])))
            let target = try SQLiteJobStore(path: directory.appendingPathComponent("b.sqlite").path)
            let report = try await StoreTransfer.copy(from: source, to: target)
            #expect(report.jobs == 3 && report.batches == 4)
            #expect(
                try await target.exportBatches(after: nil, limit: 10) == source.exportBatches(after: nil, limit: 10))
            #expect(try await target.exportBatches(after: "batch_1", limit: 1).map(\.id) == ["batch_2"])
            #expect(try await target.jobs(batchID: "batch_2").map(\.id) == ["j2"])

            // A store holding only a batch is not empty.
            let third = try SQLiteJobStore(path: directory.appendingPathComponent("c.sqlite").path)
            #expect(try await third.importBatch(Self.manifest("batch_x", jobs: [])))
            let refused = await #expect(throws: JobStoreError.self) {
                try await StoreTransfer.copy(from: source, to: third)
            }
            #expect(refused?.message.contains("already holds 1 batch;") == true, "\(String(describing: refused))")
            #expect(try await third.jobCount() == 0)
        }
    }
}
