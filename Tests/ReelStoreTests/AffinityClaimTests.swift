import Foundation
import ReelCore
import Testing

@testable import ReelStore

/// The affinity claim (`ClaimAffinity`) in every store: a slot holding a LoRA set takes the oldest job of that set
/// of the head's priority first, within the window, and never across priorities.
@Suite struct AffinityClaimTests {
    /// A spec with one LoRA of that content hash (a letter repeated), or none.
    static func spec(lora: Character?) -> GenerationSpec {
        var spec = makeSpec()
        if let lora {
            spec.loras = [
                ResolvedLoRA(
                    name: "style-\(lora)", sha256: String(repeating: lora, count: 64), bytes: 1, scale: 1,
                    expert: .both)
            ]
        }
        return spec
    }

    static let keyA = spec(lora: "a").loraKey
    static let keyB = spec(lora: "b").loraKey

    func add(
        _ store: any JobStore, _ id: String, lora: Character?, priority: Int = 0, at seconds: Double
    )
        async throws
    {
        let (_, created) = try await store.enqueue(
            newJob(id, priority: priority, spec: Self.spec(lora: lora)), now: at(seconds))
        #expect(created)
    }

    func claim(
        _ store: any JobStore, holding key: String, window: TimeInterval = 30, at seconds: Double
    )
        async throws -> String?
    {
        try await store.claim(
            owner: slot0, slot: slot0, leaseExpiresAt: at(seconds + 60), now: at(seconds),
            affinity: ClaimAffinity(loraKey: key, window: window)
        )?.job.id
    }

    @Test func keysAreContentHashesAndEmptyForNone() {
        #expect(Self.spec(lora: nil).loraKey == "")
        #expect(Self.keyA.count == 64 && Self.keyA != Self.keyB)
        var scaled = Self.spec(lora: "a")
        scaled.loras?[0].scale = 0.5
        #expect(scaled.loraKey != Self.keyA, "another scale is another set to apply")
    }

    @Test(arguments: StoreKind.allCases)
    func aSlotTakesTheOldestJobOfItsSetFirst(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await add(store, "1-a", lora: "a", at: 0)
            try await add(store, "2-b", lora: "b", at: 1)
            try await add(store, "3-a", lora: "a", at: 2)
            try await add(store, "4-b", lora: "b", at: 3)
            // The slot holds b: it takes 2-b, then 4-b, passing 1-a and 3-a, then the a jobs in order.
            #expect(try await claim(store, holding: Self.keyB, at: 10) == "2-b")
            #expect(try await claim(store, holding: Self.keyB, at: 11) == "4-b")
            #expect(try await claim(store, holding: Self.keyB, at: 12) == "1-a")
            #expect(try await claim(store, holding: Self.keyA, at: 13) == "3-a")
            #expect(try await claim(store, holding: Self.keyA, at: 14) == nil)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func noJobIsPassedOverForLongerThanTheWindow(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await add(store, "head-a", lora: "a", at: 0)
            for index in 0..<4 { try await add(store, "b-\(index)", lora: "b", at: 1 + Double(index)) }
            // Passed over first at 10; at 39.9 it is still within 30 s of that.
            #expect(try await claim(store, holding: Self.keyB, at: 10) == "b-0")
            #expect(try await claim(store, holding: Self.keyB, at: 39.9) == "b-1")
            // At 40 it has waited 30 s past its turn: it is taken, though the slot holds b.
            #expect(try await claim(store, holding: Self.keyB, at: 40) == "head-a")
            #expect(try await claim(store, holding: Self.keyA, at: 41) == "b-2")
        }
    }

    @Test(arguments: StoreKind.allCases)
    func affinityNeverJumpsPriorities(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await add(store, "low-b", lora: "b", priority: 0, at: 0)
            try await add(store, "high-a", lora: "a", priority: 5, at: 1)
            try await add(store, "high-none", lora: nil, priority: 5, at: 2)
            #expect(try await claim(store, holding: Self.keyB, at: 10) == "high-a", "no b job at priority 5")
            #expect(try await claim(store, holding: "", at: 11) == "high-none")
            #expect(try await claim(store, holding: Self.keyA, at: 12) == "low-b")
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aWindowOfZeroIsThePlainOrder(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await add(store, "1-a", lora: "a", at: 0)
            try await add(store, "2-b", lora: "b", at: 1)
            #expect(try await claim(store, holding: Self.keyB, window: 0, at: 10) == "1-a")
            #expect(try await claim(store, holding: Self.keyB, window: 0, at: 11) == "2-b")
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aRequeuedJobIsPassedOverAfresh(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await add(store, "1-a", lora: "a", at: 0)
            try await add(store, "2-b", lora: "b", at: 1)
            try await add(store, "3-b", lora: "b", at: 2)
            #expect(try await claim(store, holding: Self.keyB, at: 10) == "2-b", "1-a passed over at 10")
            // 1-a is claimed at 40 (its window ran out), fails and is queued again at 50.
            let held = try #require(
                try await store.claim(
                    owner: slot1, slot: slot1, leaseExpiresAt: at(100), now: at(40),
                    affinity: ClaimAffinity(loraKey: Self.keyB, window: 30)))
            #expect(held.job.id == "1-a")
            #expect(
                try await store.fail(
                    held.lease, code: "worker_crashed", message: "gone", retry: true, memorySaving: false, now: at(50)))
            // Its old mark is gone: at 60 it is passed over again (first at 60), not taken as overdue.
            #expect(try await claim(store, holding: Self.keyB, at: 60) == "3-b")
            #expect(try await claim(store, holding: Self.keyB, at: 61) == "1-a")
        }
    }
}
