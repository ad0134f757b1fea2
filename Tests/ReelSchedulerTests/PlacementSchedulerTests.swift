import Foundation
import Prometheus
import ReelCore
import ReelStore
import ReelTestSupport
import Testing

@testable import ReelScheduler

#if canImport(Glibc)
    import Glibc
#endif

/// Every placement with CPU worker processes: replicas side by side, a split slot preparing the next prompt, and a
/// parallel group of two ranks. The scripted worker runs most; the real engine (tiny model, ranks joined with
/// torch.distributed over gloo) runs a stalled rank.
@Suite(.serialized) struct PlacementSchedulerTests {
    @Test func replicasRunTwoJobsAtOnce() async throws {
        let harness = try SchedulerHarness(slots: 2)
        // Both workers ready first: on a loaded machine one may start seconds after the other, and the first would
        // run both jobs one after the other before the second is up.
        let ready = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < ready && harness.scheduler.workers.filter({ $0.state == .ready }).count < 2 {
            try await Task.sleep(for: .milliseconds(20))
        }
        let first = try await harness.submit("a slow river [slow]", steps: 4)
        let second = try await harness.submit("a slow cloud [slow]", steps: 4)
        // Both jobs are denoising at the same moment, on different slots.
        let deadline = ContinuousClock.now + .seconds(120)
        var together = false
        while ContinuousClock.now < deadline && !together {
            let busy = harness.scheduler.workers.filter { $0.state == .busy && $0.stage == "denoising" }
            together = Set(busy.compactMap(\.job)) == [first.id, second.id]
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(together, "the two replicas ran the two jobs at the same time")
        let done = [try await harness.waitForTerminal(first.id), try await harness.waitForTerminal(second.id)]
        #expect(done.allSatisfy { $0.state == .succeeded })
        #expect(Set(done.compactMap(\.slot)) == ["cpu-1", "cpu-2"])
        #expect(harness.scheduler.workers.allSatisfy { $0.placement == "replica" })
        await harness.stop()
    }

    @Test func aSplitSlotEncodesTheNextPromptWhileAJobDenoises() async throws {
        let slot = Slot(id: "split-1", device: "cpu", textDevice: "cpu")
        let harness = try SchedulerHarness(slotList: [slot])
        let first = try await harness.submit("a lighthouse at dusk [slow]", steps: 4)
        let second = try await harness.submit("a harbour at dawn")
        let status = try #require(harness.scheduler.workers.first)
        #expect(status.placement == "split" && status.textDevice == "cpu" && status.device == "cpu")

        let embeddings = { (job: Job) throws -> [String: String] in
            let data = try Data(contentsOf: URL(fileURLWithPath: try #require(job.outputs?.metadata)))
            let record = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            return try #require(record["text_embeddings"] as? [String: String])
        }
        let firstDone = try await harness.waitForTerminal(first.id)
        let secondDone = try await harness.waitForTerminal(second.id)
        #expect(firstDone.state == .succeeded && secondDone.state == .succeeded)
        #expect(try embeddings(firstDone)["prompt"] == "miss", "nothing ran before the first job to prepare it")
        #expect(
            try embeddings(secondDone)["prompt"] == "hit",
            "the second prompt was encoded while the first job denoised, from a prepare request")
        await harness.stop()
    }

    @Test func aParallelGroupRunsAJobAndRestartsWholeWhenARankDies() async throws {
        let slot = Slot(id: "group-1", device: "cpu", rankDevices: ["cpu", "cpu"])
        let harness = try SchedulerHarness(slotList: [slot])
        try await harness.waitUntilReady()
        let started = try #require(harness.scheduler.workers.first)
        #expect(started.placement == "parallel:2" && started.sharded == false)
        let firstPIDs = (started.ranks ?? []).compactMap(\.pid)
        #expect(firstPIDs.count == 2 && firstPIDs[0] == started.pid && firstPIDs[0] != firstPIDs[1])

        // One job through the group: rank 0 writes the files, nobody else writes into the job's directory.
        let plain = try await harness.submit("a quiet square")
        let plainDone = try await harness.waitForTerminal(plain.id)
        #expect(plainDone.state == .succeeded && plainDone.attempts == 1)
        let directory = harness.scheduler.configuration.outputDirectory(jobID: plain.id)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == ["job.json", "video.mp4"])

        // Rank 1 dies in the middle of a job: every rank is stopped, the group restarts and the job runs again. 30
        // slow steps leave rank 0 about 12 s of denoising after step 1: in a loaded parallel run this test's task can
        // wait seconds for a thread before it sends the kill, and rank 0 must not finish the job first.
        let job = try await harness.submit("a crowded square [slow]", steps: 30)
        _ = try await harness.workerPID(running: job.id, atStep: 1)
        kill(-firstPIDs[1], SIGKILL)
        let done = try await harness.waitForTerminal(job.id)
        #expect(done.state == .succeeded && done.attempts == 2)
        let events = try await harness.store.events(jobID: job.id)
        #expect(
            events.contains { $0.kind == "requeued" && ($0.message ?? "").contains("rank 1") },
            "\(events.map { "\($0.kind): \($0.message ?? "")" })")
        #expect(kill(firstPIDs[0], 0) != 0, "rank 0 of the broken group was stopped too")
        let after = try #require(harness.scheduler.workers.first)
        #expect(after.restarts >= 1)
        let newPIDs = after.ranks?.compactMap(\.pid) ?? []
        #expect(newPIDs.count == 2 && Set(newPIDs).isDisjoint(with: firstPIDs), "both ranks are new processes")
        #expect(harness.videos(of: done) == ["video.mp4"])
        await harness.stop()
    }

    @Test func aStalledRankStopsTheWholeGroupAfterTheStallTimeout() async throws {
        let slot = Slot(id: "group-1", device: "cpu", rankDevices: ["cpu", "cpu"])
        // The real engine: its ranks wait for each other in the frames check, so a stopped rank silences rank 0.
        let harness = try SchedulerHarness(stallTimeout: .seconds(4), slotList: [slot], worker: .real)
        let job = try await harness.submit("a frozen square [slow]", steps: 3)
        _ = try await harness.workerPID(running: job.id, atStep: 1)
        let pids = (harness.scheduler.workers.first?.ranks ?? []).compactMap(\.pid)
        try #require(pids.count == 2)
        // Rank 1 stops answering; rank 0 finishes denoising and then waits for it in the frames check, silent.
        kill(pids[1], SIGSTOP)
        let done = try await harness.waitForTerminal(job.id)
        #expect(done.state == .succeeded && done.attempts == 2)
        #expect(kill(pids[1], 0) != 0 && kill(pids[0], 0) != 0, "both ranks of the stalled group were killed")
        let events = try await harness.store.events(jobID: job.id)
        #expect(events.contains { $0.kind == "requeued" && ($0.message ?? "").contains("stalled") })
        await harness.stop()
    }

    /// `--placement auto` while the node runs, with real workers: a parallel group while the queue is short, replicas
    /// once a backlog has waited, and the group again once the node has been idle. The plan function stands in for
    /// `AutoPlacement` on GPUs (on CPU it always picks replicas); the layout changes themselves are the real ones.
    @Test func autoChangesLayoutWithTheQueueAndLosesNothing() async throws {
        let group = [Slot(id: "group-1", device: "cpu", rankDevices: ["cpu", "cpu"])]
        let replicas = [Slot(id: "cpu-1", device: "cpu"), Slot(id: "cpu-2", device: "cpu")]
        let relayout = Relayout(settle: .seconds(1), interval: .milliseconds(200)) { depth in
            PlacementPlan(
                requested: .auto, chosen: depth >= 2 ? .replica : .parallel(2), slots: depth >= 2 ? replicas : group,
                notes: ["test: \(depth) waiting"], memorySaving: false)
        }
        let registry = PrometheusCollectorRegistry()
        let harness = try SchedulerHarness(
            slotList: group, relayout: relayout, metrics: PrometheusMetricsFactory(registry: registry))
        try await harness.waitUntilReady()
        #expect(harness.scheduler.workers.map(\.slot) == ["group-1"])
        let groupPIDs = Set((harness.scheduler.workers.first?.ranks ?? []).compactMap(\.pid))

        // A backlog: the group takes the slow first job, five wait behind it.
        var jobs = [try await harness.submit("a slow first train [slow]", steps: 4)]
        for index in 1...5 { jobs.append(try await harness.submit("train number \(index)")) }
        var sawReplicas = false
        let deadline = ContinuousClock.now + .seconds(180)
        while ContinuousClock.now < deadline {
            let slots = harness.scheduler.workers.map(\.slot)
            if slots == ["cpu-1", "cpu-2"] { sawReplicas = true }
            let states = try await jobs.asyncMap { try await harness.store.job(id: $0.id)?.state }
            if states.allSatisfy({ $0?.isTerminal == true }) { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(sawReplicas, "the backlog changed the layout to two replicas")
        var slotsUsed = Set<String>()
        for job in jobs {
            let done = try await harness.waitForTerminal(job.id)
            #expect(done.state == .succeeded && done.attempts == 1, "\(done.id): \(done.state) after \(done.attempts)")
            #expect(harness.videos(of: done) == ["video.mp4"])
            if let slot = done.slot { slotsUsed.insert(slot) }
        }
        #expect(slotsUsed.contains("group-1"), "the group ran the first job to its end before the change")
        // Which replica takes which job depends on which worker loads first; the layout had both (sawReplicas).
        #expect(!slotsUsed.isDisjoint(with: ["cpu-1", "cpu-2"]), "the replicas ran the backlog: \(slotsUsed)")
        let events = try await jobs.asyncMap { try await harness.store.events(jobID: $0.id) }.flatMap { $0 }
        #expect(!events.contains { $0.kind == "requeued" }, "no job was stopped by a change of layout")

        // Idle with an empty queue: back to one group, with new processes.
        let back = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < back {
            let workers = harness.scheduler.workers
            if workers.map(\.slot) == ["group-1"] && workers.first?.state == .ready { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let final = try #require(harness.scheduler.workers.first)
        #expect(harness.scheduler.workers.count == 1 && final.slot == "group-1" && final.state == .ready)
        #expect(final.placement == "parallel:2" && final.placementNotes == ["test: 0 waiting"])
        let newPIDs = Set((final.ranks ?? []).compactMap(\.pid))
        #expect(newPIDs.count == 2 && newPIDs.isDisjoint(with: groupPIDs))
        let exposition = registry.emitToString()
        #expect(exposition.contains(#"reel_layout_changes_total{to="replica"} 1"#), "\(exposition)")
        #expect(exposition.contains(#"reel_layout_changes_total{to="parallel:2"} 1"#), "\(exposition)")
        await harness.stop()
    }

    /// `auto` on a layout whose workers cannot start (as a parallel group might on GPUs where context parallelism
    /// fails): once the slot is unhealthy the node falls back to replicas, runs the waiting job there, and does not
    /// go back to the broken layout when idle.
    @Test func autoLeavesALayoutWhoseWorkersCannotStart() async throws {
        // Rank 1 asks for a GPU this machine lacks, so the group fails at every start.
        let broken = [Slot(id: "group-1", device: "cpu", rankDevices: ["cpu", "cuda:7"])]
        let replicas = [Slot(id: "cpu-1", device: "cpu"), Slot(id: "cpu-2", device: "cpu")]
        let relayout = Relayout(settle: .seconds(1), interval: .milliseconds(200)) { depth in
            PlacementPlan(
                requested: .auto, chosen: depth >= 2 ? .replica : .parallel(2), slots: depth >= 2 ? replicas : broken,
                notes: [], memorySaving: false)
        }
        // The scripted worker on a machine of one (simulated) GPU: cuda:7 fails its start as the real worker would.
        let harness = try SchedulerHarness(
            slotList: broken, relayout: relayout, environment: ["REEL_SCRIPTED_GPUS": "1"])
        let job = try await harness.submit("a patient lighthouse")
        let done = try await harness.waitForTerminal(job.id, timeout: .seconds(180))
        #expect(done.state == .succeeded && done.attempts == 1)
        #expect(done.slot == "cpu-1" || done.slot == "cpu-2", "\(String(describing: done.slot))")
        let notes = harness.scheduler.workers.first?.placementNotes ?? []
        #expect(notes.contains { $0.contains("slot group-1 could not start") }, "\(notes)")
        // Idle with an empty queue, which would call for the group: the node stays on replicas.
        try await Task.sleep(for: .seconds(4))
        #expect(harness.scheduler.workers.map(\.slot) == ["cpu-1", "cpu-2"])
        await harness.stop()
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
