import Foundation
import ReelCore
import ReelStore
import ReelTestSupport
import Testing

@testable import ReelScheduler

#if canImport(Glibc)
    import Glibc
#endif

/// The scheduler with worker processes and a real SQLite store, under faults. The scripted worker runs most cases;
/// the real engine (tiny model, CPU) runs a kill -9 recovery, the resume exactness and a cancel.
@Suite(.serialized) struct SchedulerFaultTests {
    @Test func jobsRunInPriorityOrderAndSucceedWithTheirFiles() async throws {
        let harness = try SchedulerHarness(slots: 1)
        // Queue before the worker is ready, so the order is decided by priority alone.
        let low = try await harness.submit("a quiet lake", priority: 0)
        let high = try await harness.submit("a busy street", priority: 5)
        let lowDone = try await harness.waitForTerminal(low.id)
        let highDone = try await harness.waitForTerminal(high.id)
        #expect(lowDone.state == .succeeded && highDone.state == .succeeded)
        #expect(highDone.startedAt! < lowDone.startedAt!, "the higher priority ran first")
        #expect(harness.videos(of: lowDone) == ["video.mp4"])
        #expect(try TestSupport.probeVideo(lowDone.outputs!.video).frames == 5)
        await harness.stop()
    }

    @Test func theNextJobDenoisesWhileTheLastOneIsEncoded() async throws {
        let harness = try SchedulerHarness(slots: 1)
        try await harness.waitUntilReady()
        // The first job's encoding is held for 2 s; the second is queued before it gets there.
        let first = try await harness.submit("a lantern on a jetty [slow-encoding]", priority: 1)
        let second = try await harness.submit("a kite over dunes")
        let firstDone = try await harness.waitForTerminal(first.id)
        let secondDone = try await harness.waitForTerminal(second.id)
        #expect(firstDone.state == .succeeded && secondDone.state == .succeeded)
        #expect(secondDone.startedAt! < firstDone.finishedAt!, "the second job started while the first was encoding")
        #expect(harness.videos(of: firstDone) == ["video.mp4"] && harness.videos(of: secondDone) == ["video.mp4"])
        #expect(try TestSupport.probeVideo(firstDone.outputs!.video).frames == 5)
        #expect(try TestSupport.probeVideo(secondDone.outputs!.video).frames == 5)
        await harness.stop()
    }

    @Test func killingTheWorkerWithOneJobEncodingAndOneDenoisingRequeuesBoth() async throws {
        let harness = try SchedulerHarness(slots: 1)
        try await harness.waitUntilReady()
        let first = try await harness.submit("a lantern on a jetty [slow-encoding]", priority: 1)
        let second = try await harness.submit("a slow kite over dunes [slow]", steps: 4)
        let pid = try await harness.workerPID(running: second.id, atStep: 1)
        let firstNow = try await harness.store.job(id: first.id)
        #expect(firstNow?.state == .running, "the first job was still encoding when the second denoised")
        kill(-pid, SIGKILL)
        let firstDone = try await harness.waitForTerminal(first.id)
        let secondDone = try await harness.waitForTerminal(second.id)
        #expect(firstDone.state == .succeeded && firstDone.attempts == 2)
        #expect(secondDone.state == .succeeded && secondDone.attempts == 2)
        await harness.stop()
    }

    @Test(arguments: [
        ("denoising", 1, TestSupport.Worker.real), ("denoising", 2, .scripted), ("encoding", 0, .scripted),
    ])
    func aKilledWorkerCostsARestartNotTheJob(stage: String, step: Int, worker: TestSupport.Worker) async throws {
        let harness = try SchedulerHarness(slots: 1, worker: worker)
        let prompt = stage == "encoding" ? "a slow fox [slow-encoding]" : "a slow fox [slow]"
        let job = try await harness.submit(prompt, steps: 3)
        let pid = try await harness.workerPID(running: job.id, atStep: step, stage: stage)
        kill(-pid, SIGKILL)
        let done = try await harness.waitForTerminal(job.id)
        #expect(done.state == .succeeded)
        #expect(done.attempts == 2)
        #expect(harness.videos(of: done) == ["video.mp4"], "exactly one set of outputs")
        let events = try await harness.store.events(jobID: job.id).map(\.kind)
        #expect(events.contains("requeued"))
        let restarts = harness.scheduler.workers.first?.restarts ?? 0
        #expect(restarts >= 1)
        await harness.stop()
    }

    @Test func aKilledJobResumesFromItsCheckpointWithIdenticalFrames() async throws {
        let harness = try SchedulerHarness(slots: 1, checkpointEvery: 1, worker: .real)
        // The prompt's fault marker changes the prompt, so both jobs carry it: only the kill differs.
        let reference = try await harness.submit(
            "a paper boat on a pond [slow]", priority: 1, steps: 6, pngFrames: true)
        let referenceDone = try await harness.waitForTerminal(reference.id)
        #expect(referenceDone.state == .succeeded && referenceDone.attempts == 1)

        let job = try await harness.submit("a paper boat on a pond [slow]", steps: 6, pngFrames: true)
        let pid = try await harness.workerPID(running: job.id, atStep: 3)
        kill(-pid, SIGKILL)
        let done = try await harness.waitForTerminal(job.id)
        #expect(done.state == .succeeded && done.attempts == 2)
        let events = try await harness.store.events(jobID: job.id)
        #expect(events.contains { $0.kind == "resumed" }, "\(events.map(\.kind))")

        let frames = { (job: Job) throws -> [Data] in
            let directory = try #require(job.outputs?.framesDirectory)
            return try FileManager.default.contentsOfDirectory(atPath: directory).sorted().map {
                try Data(contentsOf: URL(fileURLWithPath: directory + "/" + $0))
            }
        }
        let resumedFrames = try frames(done)
        #expect(resumedFrames.count == 5)
        #expect(resumedFrames == (try frames(referenceDone)), "the resumed video equals the uninterrupted one")
        let directory = harness.scheduler.configuration.outputDirectory(jobID: job.id)
        #expect(!FileManager.default.fileExists(atPath: directory + "/checkpoint.pt"), "removed after success")
        await harness.stop()
    }

    @Test func outOfMemoryIsRetriedOnceWithTheMemorySavingSettings() async throws {
        let harness = try SchedulerHarness(slots: 1)
        let job = try await harness.submit("a huge panorama [oom]")
        let done = try await harness.waitForTerminal(job.id)
        #expect(done.state == .succeeded)
        #expect(done.attempts == 2 && done.memorySaving)
        let events = try await harness.store.events(jobID: job.id)
        #expect(events.contains { $0.kind == "requeued" && ($0.message ?? "").contains("out of memory") })
        let record = try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: done.outputs!.metadata)))
        #expect((record as? [String: Any])?["memory_saving"] as? Bool == true)
        await harness.stop()
    }

    @Test func aStoppedWorkerIsKilledAfterTheStallTimeout() async throws {
        let harness = try SchedulerHarness(slots: 1, stallTimeout: .seconds(5))
        let job = try await harness.submit("a frozen river [slow]", steps: 3)
        let pid = try await harness.workerPID(running: job.id, atStep: 1)
        kill(pid, SIGSTOP)
        let done = try await harness.waitForTerminal(job.id)
        #expect(done.state == .succeeded && done.attempts == 2)
        #expect(kill(pid, 0) != 0, "the stopped worker was killed")
        let events = try await harness.store.events(jobID: job.id)
        #expect(events.contains { $0.kind == "requeued" && ($0.message ?? "").contains("stalled") })
        await harness.stop()
    }

    @Test func aJobThatCrashesItsWorkerEveryTimeFailsWithoutHurtingOthers() async throws {
        let harness = try SchedulerHarness(slots: 1, maxAttempts: 3)
        let poison = try await harness.submit("a cursed tape [crash]", priority: 1)
        let fine = try await harness.submit("a sunny meadow")
        let poisonDone = try await harness.waitForTerminal(poison.id)
        #expect(poisonDone.state == .failed)
        #expect(poisonDone.attempts == 3)
        #expect(poisonDone.errorMessage?.contains("3 attempts") == true, "\(poisonDone.errorMessage ?? "")")
        let fineDone = try await harness.waitForTerminal(fine.id)
        #expect(fineDone.state == .succeeded && fineDone.attempts == 1)
        await harness.stop()
    }

    @Test func cancellingQueuedAndRunningJobs() async throws {
        let harness = try SchedulerHarness(slots: 1, worker: .real)
        let running = try await harness.submit("a long parade [slow]", priority: 1, steps: 8)
        let queued = try await harness.submit("never runs")
        _ = try await harness.workerPID(running: running.id, atStep: 1)
        let cancelledQueued = try await harness.store.cancel(id: queued.id, now: Date())
        #expect(cancelledQueued?.state == .cancelled)
        _ = try await harness.store.cancel(id: running.id, now: Date())
        harness.scheduler.requestCancel(jobID: running.id)
        let done = try await harness.waitForTerminal(running.id)
        #expect(done.state == .cancelled)
        #expect((done.progress?.step ?? 0) < 8, "it stopped before the end")
        // Never revived: the worker stays idle and both stay cancelled.
        try await Task.sleep(for: .seconds(1))
        #expect(try await harness.store.job(id: queued.id)?.state == .cancelled)
        #expect(try await harness.store.job(id: running.id)?.state == .cancelled)
        #expect(harness.videos(of: done).isEmpty)
        await harness.stop()
    }

    @Test func shutdownLeavesRunningJobsQueuedWithoutCountingTheAttempt() async throws {
        let harness = try SchedulerHarness(slots: 1, grace: .milliseconds(300))
        let job = try await harness.submit("a never-ending story [slow]", steps: 20)
        _ = try await harness.workerPID(running: job.id, atStep: 1)
        await harness.stop()
        let after = try await harness.store.job(id: job.id)
        #expect(after?.state == .queued)
        #expect(after?.attempts == 0)
    }

    @Test func aSlotWhoseWorkerCannotStartIsUnhealthy() async throws {
        let harness = try SchedulerHarness(slots: 1, model: "/nonexistent/wan-model")
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline && harness.scheduler.workers.first?.state != .unhealthy {
            try await Task.sleep(for: .milliseconds(100))
        }
        let status = harness.scheduler.workers.first
        #expect(status?.state == .unhealthy)
        #expect(
            status?.lastError?.contains("/nonexistent/wan-model does not exist") == true, "\(status?.lastError ?? "")")
        #expect(!harness.scheduler.isReady)
        await harness.stop()
    }
}
