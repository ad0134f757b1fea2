import Foundation
import ReelCore
import Testing

@testable import ReelScheduler

/// `--placement` parsing, the slots each placement makes, and the `auto` policy as a pure function.
@Suite struct PlacementTests {
    static let gib: Int64 = 1 << 30
    /// TI2V-5B in bf16: 24 heads, UMT5-XXL ≈ 10.6 GiB, transformer + VAE + working room ≈ 22.6 GiB.
    static let ti2v = ModelFootprint.of(ModelCatalogStub.model(.ti2v5B))
    /// T2V-A14B: 40 heads, two 14B experts ≈ 65 GiB with working room.
    static let a14b = ModelFootprint.of(ModelCatalogStub.model(.t2vA14B))

    @Test func parsesEveryPlacementAndNamesTheFlagWhenItCannot() throws {
        #expect(try Placement.parse("replica") == .replica)
        #expect(try Placement.parse("split") == .split)
        #expect(try Placement.parse("auto") == .auto)
        #expect(try Placement.parse("parallel:4") == .parallel(4))
        for bad in ["parallel", "parallel:1", "parallel:x", "sideways"] {
            #expect(throws: PlacementError.self) { try Placement.parse(bad) }
            do {
                _ = try Placement.parse(bad)
            } catch {
                #expect(error.description.hasPrefix("--placement: '\(bad)'"), "\(error)")
            }
        }
    }

    @Test func replicaMakesOneSlotPerDevice() throws {
        let plan = try PlacementPlanner.plan(
            .replica, devices: ["cpu", "cpu"], model: Self.ti2v, deviceMemoryBytes: nil, queueDepth: 0)
        #expect(plan.slots == [Slot(id: "cpu-1", device: "cpu"), Slot(id: "cpu-2", device: "cpu")])
    }

    @Test func splitPairsDevicesTextEncoderFirst() throws {
        let plan = try PlacementPlanner.plan(
            .split, devices: ["cuda:0", "cuda:1", "cuda:2"], model: Self.ti2v, deviceMemoryBytes: 16 * Self.gib,
            queueDepth: 0)
        #expect(
            plan.slots == [
                Slot(id: "split-1", device: "cuda:1", textDevice: "cuda:0"), Slot(id: "cuda:2", device: "cuda:2"),
            ])
        #expect(plan.notes.contains { $0.contains("cuda:2 is left over") })
        #expect(plan.lines.contains("  split-1: split: text encoder on cuda:0, transformer and VAE on cuda:1"))
        #expect(throws: PlacementError.self) {
            try PlacementPlanner.plan(
                .split, devices: ["cuda:0"], model: Self.ti2v, deviceMemoryBytes: nil, queueDepth: 0)
        }
    }

    @Test func parallelGroupsConsecutiveDevicesAndChecksTheHeads() throws {
        let plan = try PlacementPlanner.plan(
            .parallel(2), devices: ["cuda:0", "cuda:1", "cuda:2", "cuda:3"], model: Self.ti2v,
            deviceMemoryBytes: 140 * Self.gib, queueDepth: 0)
        #expect(plan.slots.map(\.id) == ["group-1", "group-2"])
        #expect(plan.slots[1].rankDevices == ["cuda:2", "cuda:3"] && plan.slots[1].device == "cuda:2")

        do {
            _ = try PlacementPlanner.plan(
                .parallel(5), devices: ["cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:4"], model: Self.ti2v,
                deviceMemoryBytes: nil, queueDepth: 0)
            Issue.record("parallel:5 with 24 heads was accepted")
        } catch {
            #expect(
                error.description == "--placement parallel:5: 5 does not divide the model's 24 attention heads; "
                    + "valid group sizes are 2, 3, 4, 6, 8")
        }
        let tiny = ModelFootprint.of(ModelCatalogStub.model(.ti2v5B, name: "tiny"))
        #expect(tiny.attentionHeads == 2)
        #expect(throws: PlacementError.self) {
            try PlacementPlanner.plan(
                .parallel(3), devices: ["cpu", "cpu", "cpu"], model: tiny, deviceMemoryBytes: nil, queueDepth: 0)
        }
        #expect(throws: PlacementError.self) {
            try PlacementPlanner.plan(
                .parallel(2), devices: ["cpu"], model: tiny, deviceMemoryBytes: nil, queueDepth: 0)
        }
        do {
            _ = try PlacementPlanner.plan(
                .parallel(2), devices: ["cuda:0", "cuda:0"], model: Self.ti2v, deviceMemoryBytes: 140 << 30,
                queueDepth: 0)
            Issue.record("a group with two ranks on one GPU was accepted")
        } catch {
            #expect(error.description.contains("two ranks on one GPU") && error.description.contains("cuda:0,cuda:0"))
        }
        let shared = try PlacementPlanner.plan(
            .replica, devices: ["cuda:0", "cuda:0"], model: Self.ti2v, deviceMemoryBytes: 140 << 30, queueDepth: 0)
        #expect(shared.slots.map(\.id) == ["cuda:0-1", "cuda:0-2"], "two replicas may share a GPU")
        let cpu = try PlacementPlanner.plan(
            .parallel(2), devices: ["cpu", "cpu"], model: tiny, deviceMemoryBytes: nil, queueDepth: 0)
        #expect(
            cpu.notes.contains { $0.contains("each rank computes the whole job") },
            "CPU groups say they are not sharded")
    }

    struct AutoCase: Sendable, CustomTestStringConvertible {
        var name: String
        var gpus: Int
        var memoryGiB: Int64?
        var model: ModelFootprint
        var queue: Int
        var expected: Placement
        var memorySaving = false
        var testDescription: String { name }
    }

    static let autoCases: [AutoCase] = [
        AutoCase(name: "CPU only", gpus: 0, memoryGiB: nil, model: ti2v, queue: 5, expected: .replica),
        AutoCase(name: "memory unknown", gpus: 4, memoryGiB: nil, model: ti2v, queue: 0, expected: .replica),
        AutoCase(name: "one big GPU", gpus: 1, memoryGiB: 80, model: ti2v, queue: 0, expected: .replica),
        AutoCase(
            name: "8 H200, empty queue: one group of 8", gpus: 8, memoryGiB: 141, model: ti2v, queue: 0,
            expected: .parallel(8)),
        AutoCase(
            name: "8 H200, 1 waiting: one group of 8", gpus: 8, memoryGiB: 141, model: ti2v, queue: 1,
            expected: .parallel(8)),
        AutoCase(
            name: "8 H200, 2 waiting: groups of 4", gpus: 8, memoryGiB: 141, model: ti2v, queue: 2,
            expected: .parallel(4)),
        AutoCase(
            name: "8 H200, 3 waiting: groups of 2", gpus: 8, memoryGiB: 141, model: ti2v, queue: 3,
            expected: .parallel(2)),
        AutoCase(
            name: "8 H200, 4 waiting: groups of 2", gpus: 8, memoryGiB: 141, model: ti2v, queue: 4,
            expected: .parallel(2)),
        AutoCase(
            name: "8 H200, 5 waiting: replicas (4 groups would leave one waiting)", gpus: 8, memoryGiB: 141,
            model: ti2v, queue: 5, expected: .replica),
        AutoCase(
            name: "8 H200, 8 waiting: replicas", gpus: 8, memoryGiB: 141, model: ti2v, queue: 8,
            expected: .replica),
        AutoCase(
            name: "8 H200, 50 waiting: replicas", gpus: 8, memoryGiB: 141, model: ti2v, queue: 50,
            expected: .replica),
        AutoCase(
            name: "3 GPUs, A14B's 40 heads: groups of 2", gpus: 3, memoryGiB: 141, model: a14b, queue: 0,
            expected: .parallel(2)),
        AutoCase(name: "2 × 24 GiB, TI2V-5B: split", gpus: 2, memoryGiB: 24, model: ti2v, queue: 0, expected: .split),
        AutoCase(
            name: "1 × 24 GiB, TI2V-5B: offload", gpus: 1, memoryGiB: 24, model: ti2v, queue: 0,
            expected: .replica, memorySaving: true),
        AutoCase(
            name: "4 × 48 GiB, A14B: offload", gpus: 4, memoryGiB: 48, model: a14b, queue: 0,
            expected: .replica, memorySaving: true),
        AutoCase(name: "2 × 72 GiB, A14B: split", gpus: 2, memoryGiB: 72, model: a14b, queue: 0, expected: .split),
        AutoCase(
            name: "2 × 80 GiB, A14B fits: one group of 2", gpus: 2, memoryGiB: 80, model: a14b, queue: 0,
            expected: .parallel(2)),
    ]

    @Test(arguments: autoCases)
    func autoPolicy(_ c: AutoCase) {
        let decision = AutoPlacement.choose(
            AutoPlacement.Inputs(
                gpus: c.gpus, deviceMemoryBytes: c.memoryGiB.map { $0 * Self.gib }, model: c.model,
                queueDepth: c.queue))
        #expect(decision.placement == c.expected, "\(decision.reason)")
        #expect(decision.memorySaving == c.memorySaving)
        #expect(decision.reason.hasPrefix("auto: "))
    }

    @Test func autoPlanPrintsWhatItChoseAndWhy() throws {
        let plan = try PlacementPlanner.plan(
            .auto, devices: ["cuda:0", "cuda:1", "cuda:2", "cuda:3"], model: Self.ti2v,
            deviceMemoryBytes: 141 * Self.gib, queueDepth: 1)
        #expect(plan.chosen == .parallel(4))
        #expect(plan.lines.first == "placement: parallel:4 (auto)")
        #expect(
            plan.slots == [
                Slot(id: "group-1", device: "cuda:0", rankDevices: ["cuda:0", "cuda:1", "cuda:2", "cuda:3"])
            ])
        #expect(plan.notes.first?.contains("1 job(s) waiting for 4 GPUs") == true)
    }

    /// `--devices cuda:0,cuda:0 --placement auto`: two replicas on the one GPU, as asked, whatever the queue; a group
    /// there would put two NCCL ranks on one GPU and fail at start.
    @Test func autoKeepsTwoWorkersOnOneGPUAsReplicas() throws {
        for queue in [0, 1, 5] {
            let plan = try PlacementPlanner.plan(
                .auto, devices: ["cuda:0", "cuda:0"], model: Self.ti2v, deviceMemoryBytes: 141 * Self.gib,
                queueDepth: queue)
            #expect(plan.chosen == .replica && plan.slots.map(\.id) == ["cuda:0-1", "cuda:0-2"] && !plan.memorySaving)
            #expect(plan.notes == ["auto: a GPU is named more than once in --devices, so one replica per name"])
        }
        let small = try PlacementPlanner.plan(
            .auto, devices: ["cuda:0", "cuda:0"], model: Self.a14b, deviceMemoryBytes: 48 * Self.gib, queueDepth: 0)
        #expect(small.chosen == .replica && small.memorySaving)
    }

    @Test func theMemoryBudgetCapsWhatAutoSeesAndTheGPUsAreAsked() throws {
        let model = ModelCatalogStub.model(.ti2v5B)
        let roomy = try PlacementPlanner.resolve(
            placement: "auto", devices: "cuda:0,cuda:1", model: model, modelPath: nil, memoryBudgetGiB: nil,
            queueDepth: 5, gpuMemoryBytes: { 80 * Self.gib })
        #expect(roomy.chosen == .replica)
        let capped = try PlacementPlanner.resolve(
            placement: "auto", devices: "cuda:0,cuda:1", model: model, modelPath: nil, memoryBudgetGiB: 24,
            queueDepth: 5, gpuMemoryBytes: { 80 * Self.gib })
        #expect(capped.chosen == .split)
        let cpu = try PlacementPlanner.resolve(
            placement: "auto", devices: "cpu", model: model, modelPath: nil, memoryBudgetGiB: 24, queueDepth: 0,
            gpuMemoryBytes: {
                Issue.record("asked the GPUs of a CPU node"); return nil
            })
        #expect(cpu.slots == [Slot(id: "cpu", device: "cpu")])
    }
}

extension PlacementTests {
    /// What `/v1/workers` shows of the plan: each slot's placement, devices and ranks, and the plan's notes.
    @Test func workersShowThePlan() throws {
        let plan = try PlacementPlanner.plan(
            .auto, devices: ["cuda:0", "cuda:1", "cuda:2"], model: Self.a14b, deviceMemoryBytes: 141 * Self.gib,
            queueDepth: 0)
        let board = StatusBoard(slots: plan.slots, node: "gpu-box", placementNotes: plan.notes)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let json = try plan.slots.indices.map {
            try #require(try JSONSerialization.jsonObject(with: encoder.encode(board.snapshot[$0])) as? [String: Any])
        }
        #expect(json[0]["placement"] as? String == "parallel:2" && json[0]["sharded"] as? Bool == true)
        let ranks = try #require(json[0]["ranks"] as? [[String: Any]])
        #expect(ranks.map { $0["device"] as? String } == ["cuda:0", "cuda:1"])
        #expect(json[1]["placement"] as? String == "replica" && json[1]["device"] as? String == "cuda:2")
        let notes = try #require(json[1]["placement_notes"] as? [String])
        #expect(notes.contains { $0.hasPrefix("auto: ") } && notes.contains { $0.contains("left over") })

        let split = try PlacementPlanner.plan(
            .split, devices: ["cuda:0", "cuda:1"], model: Self.ti2v, deviceMemoryBytes: nil, queueDepth: 0)
        let status = StatusBoard(slots: split.slots, node: "n").snapshot[0]
        #expect(status.placement == "split" && status.textDevice == "cuda:0" && status.device == "cuda:1")
        #expect(status.ranks == nil && status.placementNotes == nil)
    }
}

enum ModelCatalogStub {
    static func model(_ architecture: Architecture, name: String? = nil) -> ModelInfo {
        // The built-in models, as the catalog resolves them.
        try! ModelCatalog.resolve(name ?? "random:\(architecture.rawValue)")
    }
}

/// `--placement auto` while the node runs: when the queue changes the layout.
@Suite struct RelayoutPolicyTests {
    static let replicas = [Slot(id: "cuda:0", device: "cuda:0"), Slot(id: "cuda:1", device: "cuda:1")]
    static let group = [Slot(id: "group-1", device: "cuda:0", rankDevices: ["cuda:0", "cuda:1"])]

    struct Row: Sendable, CustomStringConvertible {
        var from: [Slot]
        var to: [Slot]
        var wantedFor: Int
        var idleFor: Int?
        var change: Bool
        var why: String
        var description: String { why }
    }

    static let rows: [Row] = [
        Row(from: group, to: group, wantedFor: 60, idleFor: 60, change: false, why: "the same layout"),
        Row(
            from: group, to: replicas, wantedFor: 20, idleFor: nil, change: true,
            why: "a backlog behind a busy group: more slots, changed while the group's job finishes"),
        Row(
            from: group, to: replicas, wantedFor: 19, idleFor: nil, change: false,
            why: "a backlog not yet settled"),
        Row(
            from: replicas, to: group, wantedFor: 60, idleFor: nil, change: false,
            why: "fewer slots while a replica runs a job: never slow a batch down"),
        Row(from: replicas, to: group, wantedFor: 60, idleFor: 5, change: false, why: "idle, but only briefly"),
        Row(
            from: replicas, to: group, wantedFor: 60, idleFor: 20, change: true,
            why: "idle for the settle time: a group for the next lone job"),
        Row(
            from: replicas, to: group, wantedFor: 5, idleFor: 60, change: false,
            why: "idle, but the queue only just emptied"),
    ]

    @Test(arguments: rows) func whenToChange(_ row: Row) {
        let change = Relayout.shouldChange(
            from: row.from, to: row.to, wantedFor: .seconds(row.wantedFor), idleFor: row.idleFor.map { .seconds($0) },
            settle: .seconds(20))
        #expect(change == row.change, "\(row.why)")
    }

    /// The plans `reel serve` follows the queue with.
    static func autoPlans(_ inputs: PlacementInputs) -> (Int) -> PlacementPlan? {
        { depth in try? inputs.plan(.auto, queueDepth: depth) }
    }

    @Test func autoPlansFollowTheQueueOnGPUsOnly() throws {
        let model = ModelCatalogStub.model(.ti2v5B)
        let plans = Self.autoPlans(
            try PlacementInputs(
                devices: "cuda:0,cuda:1,cuda:2,cuda:3", model: model, modelPath: nil, memoryBudgetGiB: nil,
                gpuMemoryBytes: { 141 << 30 }))
        #expect(plans(0)?.chosen == .parallel(4))
        #expect(plans(1)?.chosen == .parallel(4))
        #expect(plans(2)?.slots.map(\.worldSize) == [2, 2])
        #expect(plans(4)?.chosen == .replica && plans(4)?.slots.count == 4)
        #expect(plans(500)?.slots == plans(4)?.slots)
        // A model no single GPU holds is split whatever the queue; on CPU there is nothing to follow.
        let capped = Self.autoPlans(
            try PlacementInputs(
                devices: "cuda:0,cuda:1", model: model, modelPath: nil, memoryBudgetGiB: 24,
                gpuMemoryBytes: { 141 << 30 }))
        #expect(capped(0)?.slots == capped(100)?.slots && capped(0)?.chosen == .split)
        let cpu = Self.autoPlans(
            try PlacementInputs(
                devices: "cpu,cpu", model: model, modelPath: nil, memoryBudgetGiB: nil, gpuMemoryBytes: { nil }))
        #expect(cpu(0)?.slots == cpu(100)?.slots && cpu(0)?.chosen == .replica)
    }
}
