import Foundation
import ReelCore
import ReelStore
import ReelWorker
import ReelWorkerProtocol
import Testing

@testable import ReelScheduler

/// Time in the table tests: seconds since the test began, as exact as `Duration`.
struct TestInstant: InstantProtocol {
    var offset: Duration

    static func seconds(_ value: Double) -> TestInstant { TestInstant(offset: .milliseconds(Int64(value * 1000))) }
    func advanced(by duration: Duration) -> TestInstant { TestInstant(offset: offset + duration) }
    func duration(to other: TestInstant) -> Duration { other.offset - offset }
    static func < (a: TestInstant, b: TestInstant) -> Bool { a.offset < b.offset }
}

/// A slot's state machine driven by hand: no processes, no store, no sleeps. Every call returns the actions the
/// machine asked for, and the time moves only when a test says so.
struct TestSlot {
    typealias Machine = SlotStateMachine<TestInstant>
    var machine: Machine
    var now = TestInstant.seconds(0)
    var generation = 0
    var jobs = 0

    init(_ configure: (inout Machine.Settings) -> Void = { _ in }) {
        var settings = Machine.Settings()
        settings.backoff = Backoff(base: .seconds(1), ceiling: .seconds(8))
        settings.stallTimeout = .seconds(60)
        settings.leaseDuration = .seconds(30)
        configure(&settings)
        machine = Machine(settings: settings)
    }

    mutating func at(_ seconds: Double) { now = .seconds(seconds) }

    /// Lets time pass, then ticks.
    mutating func after(_ duration: Duration) -> [SlotAction] {
        now = now.advanced(by: duration)
        return machine.tick(now: now)
    }

    static func ready(pid: Int32 = 100) -> WorkerEvent {
        .ready(
            .init(
                protocol: 1, device: "cpu", model: "tiny", architecture: "ti2v-5b", dtype: "float32",
                freeMemoryBytes: 1 << 30, totalMemoryBytes: 2 << 30, fps: 24, spatialStride: 32, temporalStride: 4,
                pid: pid))
    }

    /// Starts the worker and brings every rank to ready; returns the actions of the last ready.
    @discardableResult
    mutating func startWorker(pids: [Int32] = [100]) -> [SlotAction] {
        let spawn = generation == 0 ? machine.start(now: now) : machine.tick(now: now)
        generation += 1
        #expect(spawn.contains(.spawn(generation: generation)), "\(spawn)")
        _ = machine.spawned(generation: generation, pids: pids, now: now)
        var actions: [SlotAction] = []
        for rank in pids.indices { actions = event(Self.ready(pid: pids[rank]), rank: rank) }
        return actions
    }

    mutating func event(_ event: WorkerEvent, rank: Int = 0, filesPresent: Bool = true) -> [SlotAction] {
        machine.workerEvent(event, rank: rank, generation: generation, filesPresent: filesPresent, now: now)
    }

    mutating func makeJob(_ id: String? = nil, steps: Int = 4, memorySaving: Bool = false) -> Job {
        jobs += 1
        let spec = GenerationSpec(
            prompt: "job \(jobs)", negativePrompt: "", width: 32, height: 32, frames: 5, fps: 24, steps: steps,
            guidance: 5, guidance2: nil, seed: 1, pngFrames: false, model: "tiny")
        return Job(
            id: id ?? "job-\(jobs)", state: .running, spec: spec, createdAt: Date(timeIntervalSince1970: 0),
            memorySaving: memorySaving)
    }

    /// Answers the pending claim with a job at `attempt`; returns the job, its lease and the actions.
    mutating func give(_ job: Job, attempt: Int = 1) -> (Job, Lease, [SlotAction]) {
        let lease = Lease(jobID: job.id, owner: "node/cpu", attempt: attempt)
        var job = job
        job.attempts = attempt
        return (job, lease, machine.claimed((job, lease), now: now))
    }

    mutating func progress(_ job: Job, _ stage: WorkerEvent.Stage, _ step: Int, of total: Int = 4) -> [SlotAction] {
        event(.progress(.init(job: job.id, stage: stage, step: step, total: total)))
    }

    mutating func result(_ job: Job, rank: Int = 0, filesPresent: Bool = true) -> [SlotAction] {
        let outputs = WorkerEvent.Outputs(
            dir: "/out/\(job.id)", video: "/out/\(job.id)/video.mp4", metadata: "/out/\(job.id)/job.json")
        let seconds = WorkerEvent.StageSeconds(
            textEncoding: 0.1, denoising: 1, vaeDecode: 0.2, encoding: 0.3, total: 1.6)
        return event(
            .result(.init(job: job.id, outputs: outputs, seconds: seconds)), rank: rank, filesPresent: filesPresent)
    }

    mutating func exit(_ exit: WorkerExit = WorkerExit(exitCode: nil, signal: 9, stderrTail: [])) -> [SlotAction] {
        _ = machine.eventsEnded(rank: 0, generation: generation, stderrTail: exit.stderrTail, now: now)
        return machine.sessionEnded(generation: generation, exits: [exit], now: now)
    }
}

extension [SlotAction] {
    /// The job ends among these actions, by job id.
    var ends: [String: JobEnd] {
        var ends: [String: JobEnd] = [:]
        for case .end(let job, _, let end) in self { ends[job.id] = end }
        return ends
    }

    var claims: Bool { contains(.claim) }

    func kills(_ generation: Int) -> Bool { contains(.kill(generation: generation)) }

    var runs: [String] { compactMap { if case .run(let job, _, _, _) = $0 { job.id } else { nil } } }
}

extension JobEnd {
    var retried: Bool { if case .failed(_, _, let retry, _) = self { retry } else { false } }
    var code: String? { if case .failed(let code, _, _, _) = self { code } else { nil } }
    var message: String? {
        switch self {
        case .failed(_, let message, _, _): message
        case .released(let reason): reason
        default: nil
        }
    }
}

@Suite struct SlotStateMachineTests {
    @Test func aReadyWorkerClaimsAndRunsTheJobWithItsCheckpoint() {
        var slot = TestSlot { $0.checkpoints = true }
        #expect(slot.machine.status.state == .starting)
        let ready = slot.startWorker()
        #expect(ready.claims)
        #expect(slot.machine.status.state == .ready && slot.machine.status.pids == [100])
        let (job, lease, started) = slot.give(slot.makeJob())
        #expect(started.contains(.run(job, lease, keepCheckpoint: true, checkpoints: true)))
        #expect(slot.machine.status.state == .busy && slot.machine.status.job == job.id)
        #expect(slot.machine.status.totalSteps == 4 && slot.machine.status.step == 0)
        _ = slot.progress(job, .denoising, 2)
        #expect(slot.machine.status.stage == "denoising" && slot.machine.status.step == 2)
        let done = slot.result(job)
        guard case .succeeded(let outputs)? = done.ends[job.id] else {
            Issue.record("no success in \(done)")
            return
        }
        #expect(outputs.video == "/out/\(job.id)/video.mp4" && outputs.secondsPerStage["total"] == 1.6)
        #expect(done.claims, "the next claim follows at once")
        #expect(slot.machine.status.job == nil)
    }

    @Test func theSlotHoldsTheLoRASetOfTheJobItLastSentUntilItsWorkerRestarts() {
        var slot = TestSlot()
        slot.startWorker()
        #expect(slot.machine.heldLoRAKey == "", "a new worker holds the base model")
        var job = slot.makeJob()
        job.spec.loras = [
            ResolvedLoRA(name: "a", sha256: String(repeating: "a", count: 64), bytes: 1, scale: 1, expert: .both)
        ]
        _ = slot.give(job)
        #expect(slot.machine.heldLoRAKey == job.spec.loraKey && !job.spec.loraKey.isEmpty)
        let done = slot.result(job)
        #expect(done.claims && slot.machine.heldLoRAKey == job.spec.loraKey, "the next claim prefers its set")
        let plain = slot.makeJob()
        _ = slot.give(plain)
        #expect(slot.machine.heldLoRAKey == "")
        #expect(slot.result(plain).claims)
        _ = slot.give(job)
        _ = slot.exit()
        #expect(slot.machine.heldLoRAKey == "", "a crashed worker's adapters are gone")
        slot.at(1)
        slot.startWorker()
        #expect(slot.machine.heldLoRAKey == "")
    }

    @Test func nothingQueuedWaitsForTheDoorbellWithASafetyNet() {
        var slot = TestSlot { $0.idleRecheck = .seconds(5) }
        slot.startWorker()
        #expect(slot.machine.claimed(nil, now: slot.now).isEmpty)
        #expect(slot.machine.nextDeadline == .seconds(5))
        #expect(slot.machine.workArrived(now: slot.now) == [.claim], "a ring claims at once")
        #expect(slot.machine.claimed(nil, now: slot.now).isEmpty)
        #expect(slot.after(.seconds(5)) == [.claim], "no ring: the safety net claims")
        // A ring while a claim is in flight is not lost when that claim finds nothing.
        #expect(slot.machine.workArrived(now: slot.now).isEmpty)
        #expect(slot.machine.claimed(nil, now: slot.now) == [.claim])
    }

    @Test func theNextJobDenoisesWhileTheLastOneIsEncoded() {
        var slot = TestSlot()
        slot.startWorker()
        let (first, _, _) = slot.give(slot.makeJob())
        _ = slot.progress(first, .denoising, 4)
        let deviceFree = slot.progress(first, .encoding, 0)
        #expect(deviceFree.claims, "the device is free once encoding starts")
        let (second, _, run) = slot.give(slot.makeJob())
        #expect(run.runs == [second.id])
        #expect(slot.machine.status.job == second.id, "the board shows the job on the device")
        #expect(slot.machine.runningJobIDs == [first.id, second.id])
        let firstDone = slot.result(first)
        #expect(firstDone.ends.keys.sorted() == [first.id] && !firstDone.claims, "the device is still busy")
        #expect(slot.result(second).claims)
    }

    @Test(arguments: [("early", WorkerEvent.Stage.denoising, 1), ("late", .denoising, 4), ("decoding", .vaeDecode, 0)])
    func aCrashRequeuesTheJobAndRestartsTheWorker(when: String, stage: WorkerEvent.Stage, step: Int) {
        var slot = TestSlot()
        slot.startWorker()
        let (job, _, _) = slot.give(slot.makeJob())
        _ = slot.progress(job, stage, step)
        let died = slot.exit(WorkerExit(exitCode: 70, signal: nil, stderrTail: ["Traceback", "boom"]))
        let end = died.ends[job.id]
        #expect(end?.retried == true && end?.code == "worker_crashed")
        #expect(end?.message == "the worker exited with status 70; last log line: boom during \(stage) \(step)/4")
        #expect(died.contains(.workerRestarted))
        #expect(slot.machine.status.state == .restarting && slot.machine.status.restarts == 1)
        #expect(slot.machine.status.lastError?.hasPrefix("the worker exited with status 70") == true)
        #expect(slot.machine.nextDeadline == .seconds(1), "restarted after the first backoff step")
        #expect(slot.after(.milliseconds(999)).isEmpty)
        slot.at(1)
        #expect(slot.startWorker().claims, "the new worker claims; the requeued job can come back")
    }

    @Test func aCrashWhileEncodingWithASecondJobInFlightRequeuesBoth() {
        var slot = TestSlot()
        slot.startWorker()
        let (first, _, _) = slot.give(slot.makeJob())
        _ = slot.progress(first, .encoding, 0, of: 1)
        let (second, _, _) = slot.give(slot.makeJob())
        _ = slot.progress(second, .denoising, 1)
        let died = slot.exit()
        #expect(died.ends.keys.sorted() == [first.id, second.id])
        #expect(died.ends.values.allSatisfy { $0.retried && $0.code == "worker_crashed" })
        #expect(died.ends[first.id]?.message?.hasSuffix("during encoding 0/1") == true)
    }

    @Test func aJobWhoseWorkerDiedEncodesAloneSoAPoisonedNeighbourCannotUseUpItsAttempts() {
        var slot = TestSlot()
        slot.startWorker()
        var innocent = slot.makeJob()
        innocent.errorCode = "worker_crashed"  // its last attempt died with the job after it
        let (_, _, _) = slot.give(innocent, attempt: 2)
        let encoding = slot.progress(innocent, .encoding, 0, of: 1)
        #expect(!encoding.claims, "no next job while it writes its files")
        #expect(slot.machine.workArrived(now: slot.now).isEmpty)
        let done = slot.result(innocent)
        #expect(done.ends[innocent.id] != nil && done.claims)
        // A job that failed otherwise keeps the overlap.
        var retried = slot.makeJob()
        retried.errorCode = "internal"
        _ = slot.give(retried, attempt: 2)
        #expect(slot.progress(retried, .encoding, 0, of: 1).claims)
    }

    @Test func aJobThatKillsItsWorkerEveryTimeFailsAfterMaxAttempts() {
        var slot = TestSlot { $0.maxAttempts = 3 }
        let poison = slot.makeJob()
        for attempt in 1...3 {
            slot.startWorker()
            _ = slot.give(poison, attempt: attempt)
            let end = slot.exit().ends[poison.id]
            #expect(end?.retried == (attempt < 3))
            if attempt == 3 { #expect(end?.message?.contains("failed after 3 attempts") == true) }
            slot.now = slot.machine.nextDeadline!
        }
        // Backoff grows with consecutive crashes: 1 s, 2 s, 4 s.
        #expect(slot.now == .seconds(7))
    }

    @Test func aStalledWorkerIsKilledAndItsJobRequeuedAsStalled() {
        var slot = TestSlot { $0.stallTimeout = .seconds(60) }
        slot.startWorker()
        let (job, _, _) = slot.give(slot.makeJob())
        _ = slot.progress(job, .denoising, 1)
        #expect(!slot.after(.seconds(59)).kills(1))
        let killed = slot.after(.seconds(1))
        #expect(killed.kills(1))
        let end = slot.exit().ends[job.id]
        #expect(end?.code == "worker_stalled" && end?.retried == true)
        #expect(end?.message == "stalled: no progress for 60.0 seconds, killed during denoising 1/4")
    }

    @Test func aLostLeaseKillsTheWorkerAndLeavesTheJobToItsNewOwner() {
        var slot = TestSlot { $0.leaseDuration = .seconds(30) }
        slot.startWorker()
        let (job, lease, _) = slot.give(slot.makeJob())
        let renew = slot.after(.seconds(10))
        #expect(renew.contains(.renew(lease, progress: nil)), "renewed every third of the lease without progress")
        #expect(slot.after(.seconds(10)).isEmpty || true)
        let lost = slot.machine.renewed(lease, held: false, now: slot.now)
        #expect(lost.kills(1))
        let end = slot.exit().ends[job.id]
        #expect(end?.message?.hasPrefix("killed after losing its lease") == true)
    }

    @Test func progressRenewsTheLeaseAtMostTwiceASecondOneAtATime() {
        var slot = TestSlot()
        slot.startWorker()
        let (job, lease, _) = slot.give(slot.makeJob())
        slot.at(0.4)
        #expect(!slot.progress(job, .denoising, 1).contains { if case .renew = $0 { true } else { false } })
        slot.at(0.6)
        let renewing = slot.progress(job, .denoising, 2)
        #expect(renewing.contains(.renew(lease, progress: JobProgress(stage: "denoising", step: 2, total: 4))))
        slot.at(1.2)
        #expect(
            !slot.progress(job, .denoising, 3).contains { if case .renew = $0 { true } else { false } },
            "not while the last renewal is in flight")
        _ = slot.machine.renewed(lease, held: true, now: slot.now)
        slot.at(1.3)
        #expect(slot.progress(job, .denoising, 4).contains { if case .renew = $0 { true } else { false } })
    }

    @Test func theShutdownGraceStopsARunningJobAndLeavesItQueued() {
        var slot = TestSlot()
        slot.startWorker()
        let (job, _, _) = slot.give(slot.makeJob())
        #expect(slot.machine.shutdown(grace: .seconds(2), now: slot.now).isEmpty, "the job may finish first")
        #expect(!slot.after(.seconds(1)).kills(1))
        #expect(slot.after(.seconds(1)).kills(1))
        let ended = slot.exit()
        #expect(ended.ends[job.id] == .released(reason: "stopped for shutdown; left queued"))
        #expect(!ended.contains(.workerRestarted) && slot.machine.isStopped)
        #expect(slot.machine.status.state == .stopped)
    }

    @Test func aJobThatFinishesWithinTheGraceEndsNormallyAndTheWorkerIsLetGo() {
        var slot = TestSlot()
        slot.startWorker()
        let (job, _, _) = slot.give(slot.makeJob())
        _ = slot.machine.shutdown(grace: .seconds(30), now: slot.now)
        let done = slot.result(job)
        #expect(done.ends[job.id] != nil && !done.claims)
        #expect(done.contains(.closeInput(generation: 1)))
        let ended = slot.machine.sessionEnded(
            generation: 1, exits: [WorkerExit(exitCode: 0, signal: nil, stderrTail: [])], now: slot.now)
        #expect(ended.isEmpty && slot.machine.isStopped)
    }

    @Test func aJobClaimedAsTheSlotStopsGoesBackToTheQueue() {
        var slot = TestSlot()
        slot.startWorker()
        _ = slot.machine.shutdown(grace: nil, now: slot.now)
        let (job, _, released) = slot.give(slot.makeJob())
        #expect(released.ends[job.id] == .released(reason: "claimed as the slot stopped; left queued"))
        #expect(released.contains(.closeInput(generation: 1)))
    }

    @Test func aCancelMadeOnAnotherNodeIsSeenInTheStoreAndForwarded() {
        var slot = TestSlot { $0.cancelCheck = .seconds(1) }
        slot.startWorker()
        let (job, lease, _) = slot.give(slot.makeJob())
        #expect(slot.after(.seconds(1)).contains(.checkCancel(jobID: job.id)))
        #expect(slot.machine.cancelChecked(jobID: job.id, requested: false, now: slot.now).isEmpty)
        #expect(slot.after(.seconds(1)).contains(.checkCancel(jobID: job.id)))
        let forwarded = slot.machine.cancelChecked(jobID: job.id, requested: true, now: slot.now)
        #expect(forwarded == [.send(.cancel(job: job.id))])
        #expect(!slot.after(.seconds(1)).contains(.checkCancel(jobID: job.id)), "sent once, not checked again")
        let cancelled = slot.event(.error(.init(job: job.id, code: .cancelled, message: "cancelled at step 2")))
        #expect(cancelled.contains(.end(job, lease, .cancelled)))
    }

    @Test func aCancelledJobWhoseWorkerDiesEndsCancelledNotRetried() {
        var slot = TestSlot()
        slot.startWorker()
        let (job, _, _) = slot.give(slot.makeJob())
        let (runsIt, actions) = slot.machine.cancelRequested(jobID: job.id, now: slot.now)
        #expect(runsIt && actions == [.send(.cancel(job: job.id))])
        #expect(slot.machine.cancelRequested(jobID: "someone-else", now: slot.now).runsIt == false)
        #expect(slot.exit().ends[job.id] == .cancelled)
    }

    @Test func outOfMemoryIsRetriedOnceWithTheMemorySavingSettings() {
        var slot = TestSlot()
        slot.startWorker()
        let (job, _, _) = slot.give(slot.makeJob())
        let oom = slot.event(.error(.init(job: job.id, code: .outOfMemory, message: "CUDA out of memory")))
        #expect(
            oom.ends[job.id]
                == .failed(code: "out_of_memory", message: "CUDA out of memory", retry: true, memorySaving: true))
        #expect(oom.claims, "the worker keeps serving")
        let (again, _, _) = slot.give(slot.makeJob(job.id, memorySaving: true), attempt: 2)
        let second = slot.event(.error(.init(job: again.id, code: .outOfMemory, message: "CUDA out of memory")))
        #expect(second.ends[job.id]?.retried == false)
        #expect(second.ends[job.id]?.message?.hasPrefix("out of memory even with the memory-saving settings") == true)
    }

    @Test func aResultWhoseFilesAreMissingIsAnError() {
        var slot = TestSlot()
        slot.startWorker()
        let (job, _, _) = slot.give(slot.makeJob())
        let end = slot.result(job, filesPresent: false).ends[job.id]
        #expect(end?.code == "internal" && end?.retried == true)
        #expect(end?.message == "the worker reported a result but its files are missing")
    }

    @Test func aWorkerErrorWithoutAJobEndsTheRunningJob() {
        var slot = TestSlot()
        slot.startWorker()
        let (job, _, _) = slot.give(slot.makeJob())
        let end = slot.event(.error(.init(job: nil, code: .internal, message: "worker broke"))).ends[job.id]
        #expect(end?.code == "internal" && end?.retried == true)
    }

    @Test func resumeAndRejectedCheckpointNoticesGoToTheJobsLog() {
        var slot = TestSlot()
        slot.startWorker()
        let (job, lease, _) = slot.give(slot.makeJob())
        let rejected = slot.event(.checkpointRejected(.init(job: job.id, reason: "corrupt: checksum")))
        #expect(
            rejected.contains(
                .note(
                    job, lease, kind: "checkpoint_rejected",
                    message: "checkpoint ignored, starting over: corrupt: checksum")))
        let resumed = slot.event(.resumed(.init(job: job.id, step: 3, total: 4)))
        #expect(
            resumed.contains(.note(job, lease, kind: "resumed", message: "resumed from the checkpoint at step 3 of 4")))
    }

    @Test func absurdNumbersFromAWorkerCannotTrap() {
        var slot = TestSlot()
        slot.startWorker()
        let (job, _, _) = slot.give(slot.makeJob())
        _ = slot.progress(job, .denoising, 1)
        slot.at(1)
        _ = slot.event(.progress(.init(job: job.id, stage: .denoising, step: Int.min, total: Int.max)))
        _ = slot.event(.progress(.init(job: job.id, stage: .denoising, step: Int.max, total: Int.min)))
        #expect(slot.machine.status.step == Int.max)
        #expect(SchedulerMetrics.nanoseconds(.nan) == 0 && SchedulerMetrics.nanoseconds(1e300) == 0)
        #expect(SchedulerMetrics.nanoseconds(-1) == 0 && SchedulerMetrics.nanoseconds(1.5) == 1_500_000_000)
    }

    @Test func eventsOfAnEarlierWorkerAreIgnored() {
        var slot = TestSlot()
        slot.startWorker()
        let (job, _, _) = slot.give(slot.makeJob())
        _ = slot.exit()
        slot.now = slot.machine.nextDeadline!
        slot.startWorker()
        let stale = slot.machine.workerEvent(
            .progress(.init(job: job.id, stage: .denoising, step: 3, total: 4)), rank: 0, generation: 1, now: slot.now)
        #expect(stale.isEmpty)
        #expect(slot.machine.sessionEnded(generation: 1, exits: [], now: slot.now).isEmpty)
    }

    @Test func aWorkerThatDiesWhileIdleIsRestartedWithoutCostingAJob() {
        var slot = TestSlot()
        slot.startWorker()
        _ = slot.machine.claimed(nil, now: slot.now)
        let died = slot.exit()
        #expect(died.ends.isEmpty && died.contains(.workerRestarted))
        #expect(slot.machine.status.state == .restarting)
    }

    @Test func startFailuresMakeTheSlotUnhealthyAndKeepRetryingWithBackoff() {
        var slot = TestSlot { $0.unhealthyAfter = 3 }
        var delays: [Duration] = []
        for attempt in 1...4 {
            let spawn = attempt == 1 ? slot.machine.start(now: slot.now) : slot.machine.tick(now: slot.now)
            #expect(spawn == [.spawn(generation: attempt)])
            _ = slot.machine.spawned(generation: attempt, pids: [Int32(200 + attempt)], now: slot.now)
            _ = slot.machine.workerEvent(
                .error(.init(job: nil, code: .modelError, message: "/models/x does not exist")), rank: 0,
                generation: attempt, now: slot.now)
            let ended = slot.machine.sessionEnded(
                generation: attempt, exits: [WorkerExit(exitCode: 3, signal: nil, stderrTail: [])], now: slot.now)
            #expect(ended.contains(.workerRestarted))
            #expect(slot.machine.status.lastError == "model_error: /models/x does not exist (exited with status 3)")
            #expect(slot.machine.status.state == (attempt >= 3 ? .unhealthy : .restarting))
            let next = slot.machine.nextDeadline!
            delays.append(slot.now.duration(to: next))
            slot.now = next
        }
        #expect(delays == [.seconds(1), .seconds(2), .seconds(4), .seconds(8)])
        #expect(slot.machine.status.state == .unhealthy)
        // A start that succeeds clears it.
        slot.generation = 4
        slot.startWorker()
        #expect(slot.machine.status.state == .ready && slot.machine.status.lastError == nil)
    }

    @Test func aWorkerThatNeverBecomesReadyIsKilledAtTheStartupTimeout() {
        var slot = TestSlot { $0.startupTimeout = .seconds(100) }
        _ = slot.machine.start(now: slot.now)
        _ = slot.machine.spawned(generation: 1, pids: [300], now: slot.now)
        #expect(slot.machine.nextDeadline == .seconds(100))
        #expect(slot.after(.seconds(100)).kills(1))
        _ = slot.machine.sessionEnded(
            generation: 1, exits: [WorkerExit(exitCode: nil, signal: 9, stderrTail: [])], now: slot.now)
        #expect(slot.machine.status.lastError == "not ready within 100.0 seconds; killed (killed by signal 9)")
    }

    @Test func aWorkerOfAnotherProtocolVersionIsAStartFailure() {
        var slot = TestSlot()
        _ = slot.machine.start(now: slot.now)
        _ = slot.machine.spawned(generation: 1, pids: [300], now: slot.now)
        var ready = TestSlot.ready()
        if case .ready(var fields) = ready { fields.protocol = 2; ready = .ready(fields) }
        #expect(slot.machine.workerEvent(ready, rank: 0, generation: 1, now: slot.now) == [.closeInput(generation: 1)])
        _ = slot.machine.sessionEnded(
            generation: 1, exits: [WorkerExit(exitCode: 0, signal: nil, stderrTail: [])], now: slot.now)
        #expect(slot.machine.status.lastError?.contains("speaks protocol 2") == true)
    }

    @Test func aShutdownWhileTheWorkerLoadsKillsItAndStops() {
        var slot = TestSlot()
        _ = slot.machine.start(now: slot.now)
        #expect(slot.machine.shutdown(grace: .seconds(30), now: slot.now).isEmpty, "no process yet")
        #expect(slot.machine.spawned(generation: 1, pids: [300], now: slot.now) == [.kill(generation: 1)])
        _ = slot.machine.sessionEnded(
            generation: 1, exits: [WorkerExit(exitCode: nil, signal: 9, stderrTail: [])], now: slot.now)
        #expect(slot.machine.isStopped && slot.machine.status.state == .stopped)
    }

    @Test func aShutdownDuringBackoffStopsAtOnce() {
        var slot = TestSlot()
        slot.startWorker()
        _ = slot.exit()
        _ = slot.machine.shutdown(grace: .seconds(30), now: slot.now)
        #expect(slot.machine.isStopped)
        #expect(slot.after(.seconds(10)).isEmpty, "no restart")
    }

    @Test func aRankOfAGroupDyingStopsEveryRankAndRequeuesTheJob() {
        var slot = TestSlot { $0.worldSize = 2 }
        let ready = slot.startWorker(pids: [400, 401])
        #expect(ready.claims, "claims only once both ranks are ready")
        let (job, _, run) = slot.give(slot.makeJob())
        #expect(
            run.contains { if case .run(_, _, let keep, let checkpoints) = $0 { !keep && !checkpoints } else { false } }
        )
        let rankDied = slot.machine.eventsEnded(rank: 1, generation: 1, stderrTail: ["NCCL error"], now: slot.now)
        #expect(rankDied.kills(1))
        _ = slot.machine.eventsEnded(rank: 0, generation: 1, stderrTail: [], now: slot.now)
        let ended = slot.machine.sessionEnded(
            generation: 1, exits: [WorkerExit(exitCode: nil, signal: 9, stderrTail: [])], now: slot.now)
        let end = ended.ends[job.id]
        #expect(end?.retried == true)
        #expect(
            end?.message
                == "rank 1 (pid 401) of the group exited; last log line: NCCL error; every rank of the group was stopped"
        )
    }

    @Test func aGroupTakesTheNextJobOnlyWhenEveryRankHasFinished() {
        var slot = TestSlot { $0.worldSize = 2 }
        slot.startWorker(pids: [400, 401])
        let (job, _, _) = slot.give(slot.makeJob())
        let rank0 = slot.result(job)
        #expect(rank0.ends[job.id] != nil && !rank0.claims)
        #expect(slot.result(job, rank: 1).claims)
        // A rank that never finishes breaks the group after the stall timeout.
        let (next, _, _) = slot.give(slot.makeJob())
        _ = slot.result(next)
        #expect(slot.after(.seconds(60)).kills(1))
        #expect(slot.machine.status.lastError == nil)
        _ = slot.exit()
        #expect(
            slot.machine.status.lastError?.hasPrefix("a rank did not finish job \(next.id) within 60.0 seconds") == true
        )
    }

    @Test func aGroupRankThatFailsToLoadIsAStartFailure() {
        var slot = TestSlot { $0.worldSize = 2 }
        _ = slot.machine.start(now: slot.now)
        _ = slot.machine.spawned(generation: 1, pids: [400, 401], now: slot.now)
        _ = slot.machine.workerEvent(TestSlot.ready(pid: 400), rank: 0, generation: 1, now: slot.now)
        let failed = slot.machine.workerEvent(
            .error(.init(job: nil, code: .modelError, message: "heads not divisible")), rank: 1, generation: 1,
            now: slot.now)
        #expect(failed.kills(1) && !failed.claims)
        _ = slot.machine.sessionEnded(generation: 1, exits: [], now: slot.now)
        #expect(slot.machine.status.lastError == "rank 1 (pid 401) failed: heads not divisible")
    }

    @Test func aFullDiskMakesTheSlotWaitNotFailJobs() {
        var slot = TestSlot { $0.diskRecheck = .seconds(5) }
        slot.startWorker()
        let deferred = slot.machine.claimDeferred("only 10 MB free", now: slot.now)
        #expect(deferred.count == 1, "logged once")
        #expect(slot.machine.status.waiting == "only 10 MB free" && slot.machine.status.state == .ready)
        #expect(slot.after(.seconds(5)) == [.claim])
        #expect(slot.machine.claimDeferred("only 10 MB free", now: slot.now).isEmpty, "not logged again")
        #expect(slot.after(.seconds(5)) == [.claim])
        _ = slot.machine.claimed(nil, now: slot.now)
        #expect(slot.machine.status.waiting == nil, "space came back")
    }

    @Test func aSplitSlotPreparesTheMostLikelyNextPrompt() {
        var slot = TestSlot { $0.preparesNext = true }
        slot.startWorker()
        _ = slot.give(slot.makeJob())
        #expect(slot.machine.tick(now: slot.now).contains(.readQueue))
        var low = slot.makeJob("low")
        var high = slot.makeJob("high")
        low.priority = 0
        high.priority = 5
        let prepare = slot.machine.queueRead([low, high], now: slot.now)
        #expect(prepare.first == .send(.prepare(.init(prompt: high.spec.prompt, negativePrompt: ""))))
        #expect(slot.after(.seconds(1)).contains(.readQueue))
        #expect(slot.machine.queueRead([low, high], now: slot.now).isEmpty, "prepared once")
    }
}
