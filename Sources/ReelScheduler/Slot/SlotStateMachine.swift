import Logging
import ReelCore
import ReelStore
import ReelWorker
import ReelWorkerProtocol

/// The decisions of one slot, as a value: the driver feeds it every event (a worker's event or exit, a store
/// call's answer, a cancel request, a shutdown, the time) and performs the actions it returns. It holds no
/// processes, reads no clock and waits for nothing, so every fault case is a table test.
///
/// A slot keeps one warm worker session (one process, or one per rank of a parallel group) and feeds it jobs from
/// the store, one on the device at a time; a single worker takes the next job while the last one's files are
/// written. A session that ends is restarted with backoff, and the jobs it held are requeued or failed by the retry
/// policy. A job whose worker sends nothing for the stall timeout, whose lease is lost, or that outlives the
/// shutdown grace has its whole session killed.
struct SlotStateMachine<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
    struct Settings: Sendable, Equatable {
        /// How many worker processes run each job together (1 unless a parallel group).
        var worldSize = 1
        var maxAttempts = 3
        var stallTimeout: Duration = .seconds(300)
        var startupTimeout: Duration = .seconds(1800)
        var leaseDuration: Duration = .seconds(60)
        var unhealthyAfter = 3
        var backoff = Backoff()
        /// Workers save checkpoints (single workers only; parallel groups never do).
        var checkpoints = false
        /// A split slot: send the next queued job's prompt to the worker while a job denoises.
        var preparesNext = false
        /// With nothing queued, claim again after this long even if no doorbell rang: a safety net for a missed
        /// wake-up (every enqueue, requeue and expired lease rings it).
        var idleRecheck: Duration = .seconds(5)
        /// After a claim failed (the store is unreachable), try again after this long.
        var claimRetry: Duration = .seconds(1)
        /// While the disk is too full to take a job, look again after this long.
        var diskRecheck: Duration = .seconds(5)
        /// Progress renews the lease at most this often.
        var progressRenewal: Duration = .milliseconds(500)
        /// How often a running job's cancel flag is read from the store (a cancel made on another node).
        var cancelCheck: Duration = .seconds(1)
        /// How often a split slot looks for the next prompt to prepare.
        var prepareInterval: Duration = .seconds(1)

        /// Without a progress event, the lease is renewed this often.
        var renewInterval: Duration { leaseDuration / 3 }
    }

    /// One attempt of a job that this slot's worker is running.
    struct RunningJob: Sendable, Equatable {
        var job: Job
        var lease: Lease
        var lastEvent: Instant
        var lastProgress: JobProgress?
        var lastRenewal: Instant
        var renewing = false
        var denoiseStart: Instant?
        var killReason: KillReason?
        var cancelRequested = false
        var cancelSent = false
        var checkingCancel = false
        var nextCancelCheck: Instant

        init(job: Job, lease: Lease, now: Instant, cancelCheck: Duration) {
            self.job = job
            self.lease = lease
            lastEvent = now
            lastRenewal = now
            nextCancelCheck = now.advanced(by: cancelCheck)
        }
    }

    /// One start of the slot's worker(s).
    struct Session: Sendable, Equatable {
        var generation: Int
        var worldSize: Int
        var pids: [Int32]?
        var startDeadline: Instant
        var readyRanks: Set<Int> = []
        var ready: WorkerEvent.Ready?
        /// Why the worker could not become ready, from its own error event or a failed check.
        var startFailure: String?
        /// Why the session cannot go on: a rank exited, failed or did not finish. Set once.
        var failure: String?
        /// The slot let the workers go (closed their stdin): their exits are expected.
        var closing = false
        var killed = false
        /// The ranks (> 0) that sent their final event, by job.
        var finishedRanks: [String: Set<Int>] = [:]
        /// The LoRA set (`GenerationSpec.loraKey`) of the job last sent to these workers, which they hold applied;
        /// "" (the base model) for a new session.
        var loraKey = ""

        /// Every rank has loaded its model.
        var isReady: Bool { ready != nil && readyRanks.count == worldSize }
    }

    enum Claim: Sendable, Equatable {
        case none
        case inFlight
        /// Nothing to take: claim again at this time (or sooner when work arrives).
        case idle(until: Instant)
    }

    /// What the slot shows in `/v1/workers`.
    struct Status: Sendable, Equatable {
        var state: WorkerStatus.State
        var pids: [Int32]?
        var job: String?
        var stage: String?
        var step: Int?
        var totalSteps: Int?
        var stepsPerSecond: Double?
        var freeMemoryBytes: Int64?
        var totalMemoryBytes: Int64?
        var restarts: Int
        var lastError: String?
        /// Why a ready slot takes no job now (the disk is too full).
        var waiting: String?
    }

    let settings: Settings
    private(set) var session: Session?
    /// The job using the device.
    private(set) var device: RunningJob?
    /// A single worker's job whose frames are done and whose files are being written while `device` denoises.
    private(set) var encoding: RunningJob?
    private(set) var claim = Claim.none
    /// The LoRA set the current session's workers hold: a claim prefers a job that needs no switch from it.
    var heldLoRAKey: String { session?.loraKey ?? "" }
    /// A parallel group's job whose rank 0 is done: the next claim waits for the other ranks (until the deadline).
    private var followers: (jobID: String, deadline: Instant)?
    private var generation = 0
    private var restartAt: Instant?
    private(set) var stopping = false
    private var graceDeadline: Instant?
    /// Stopped for good: the driver can return.
    private(set) var isStopped = false
    private var startFailures = 0
    private var crashes = 0
    private var restarts = 0
    private var lastError: String?
    private var waiting: String?
    private var stepsPerSecond: Double?
    private var lastState = WorkerStatus.State.starting
    private var prepared: String?
    private var prepareDue: Instant?
    private var readingQueue = false
    /// Work arrived while a claim was in flight: if that claim finds nothing, claim again at once.
    private var workArrivedDuringClaim = false

    init(settings: Settings) {
        self.settings = settings
    }

    // MARK: - Starting and stopping

    /// The slot begins: its first worker starts at once.
    mutating func start(now: Instant) -> [SlotAction] {
        spawn(now: now)
    }

    private mutating func spawn(now: Instant) -> [SlotAction] {
        restartAt = nil
        generation += 1
        session = Session(
            generation: generation, worldSize: settings.worldSize,
            startDeadline: now.advanced(by: settings.startupTimeout))
        lastState = startFailures >= settings.unhealthyAfter ? .unhealthy : .starting
        return [.spawn(generation: generation)]
    }

    /// The session's processes are running.
    mutating func spawned(generation: Int, pids: [Int32], now: Instant) -> [SlotAction] {
        guard var session, session.generation == generation else { return [] }
        session.pids = pids
        session.startDeadline = now.advanced(by: settings.startupTimeout)
        self.session = session
        // A kill decided before the processes existed is carried out now.
        if session.killed { return [.kill(generation: generation)] }
        if stopping { return kill(because: nil) }
        return []
    }

    /// Stop claiming. With a grace, running jobs are stopped when it ends and left queued; with none (a change of
    /// layout) they run to their end. A later call may shorten the grace, never lengthen it.
    mutating func shutdown(grace: Duration?, now: Instant) -> [SlotAction] {
        stopping = true
        if let grace {
            let deadline = now.advanced(by: grace)
            if graceDeadline.map({ deadline < $0 }) ?? true { graceDeadline = deadline }
        }
        guard let session else {
            isStopped = true
            return []
        }
        if !session.isReady { return kill(because: nil) }
        return stopIfIdle()
    }

    /// Closes the worker's input once nothing is running, when the slot is stopping.
    private mutating func stopIfIdle() -> [SlotAction] {
        guard stopping, var session, session.isReady, !session.closing, !session.killed, device == nil,
            encoding == nil, claim != .inFlight, followers == nil
        else { return [] }
        session.closing = true
        self.session = session
        return [.closeInput(generation: session.generation)]
    }

    private mutating func kill(because reason: KillReason?) -> [SlotAction] {
        guard var session, !session.killed else { return [] }
        if let reason {
            if device != nil && device?.killReason == nil { device?.killReason = reason }
            if encoding != nil && encoding?.killReason == nil { encoding?.killReason = reason }
        }
        session.killed = true
        self.session = session
        return session.pids == nil ? [] : [.kill(generation: session.generation)]
    }

    /// The group cannot go on: remember why (once) and kill every rank.
    private mutating func groupFailed(_ reason: String) -> [SlotAction] {
        guard var session, session.failure == nil, !session.closing else { return [] }
        session.failure = reason
        self.session = session
        return [.log(.warning, reason + "; stopping every rank")] + kill(because: .rankDied(reason))
    }

    // MARK: - Worker events

    /// One event from rank `rank` of session `generation`. `filesPresent`: for a `result`, whether the files it
    /// names exist (the driver looks).
    mutating func workerEvent(
        _ event: WorkerEvent, rank: Int, generation: Int, filesPresent: Bool = true, now: Instant
    ) -> [SlotAction] {
        guard let session, session.generation == generation else { return [] }
        if rank > 0 { return followerEvent(event, rank: rank, now: now) }
        if !session.isReady {
            switch event {
            case .ready(let ready):
                guard ready.protocol == WorkerCodec.protocolVersion else {
                    self.session?.startFailure =
                        WorkerFailure.protocolMismatch(worker: ready.protocol, expected: WorkerCodec.protocolVersion)
                        .description
                    return [.closeInput(generation: generation)]
                }
                self.session?.ready = ready
                self.session?.readyRanks.insert(0)
                return becomeReadyIfAll(now: now)
            case .error(let failure):
                if self.session?.startFailure == nil {
                    self.session?.startFailure = "\(failure.code): \(failure.message)"
                }
                return [.closeInput(generation: generation)]
            default:
                return []
            }
        }
        if let jobID = event.job {
            if device?.job.id == jobID { return deviceEvent(event, filesPresent: filesPresent, now: now) }
            if encoding?.job.id == jobID { return encodingEvent(event, filesPresent: filesPresent, now: now) }
            return []
        }
        // An error about the worker rather than a job ends whatever job is running.
        if case .error = event {
            if device != nil { return deviceEvent(event, filesPresent: filesPresent, now: now) }
            if encoding != nil { return encodingEvent(event, filesPresent: filesPresent, now: now) }
        }
        return []
    }

    private mutating func followerEvent(_ event: WorkerEvent, rank: Int, now: Instant) -> [SlotAction] {
        switch event {
        case .ready:
            session?.readyRanks.insert(rank)
            return becomeReadyIfAll(now: now)
        case .error(let failure) where failure.job == nil:
            return groupFailed("rank \(rank)\(pidText(rank)) failed: \(failure.message)")
        case .result(let result):
            return followerFinished(job: result.job, rank: rank, now: now)
        case .error(let failure):
            return followerFinished(job: failure.job!, rank: rank, now: now)
        default:
            return []
        }
    }

    private func pidText(_ rank: Int) -> String {
        guard let pids = session?.pids, rank < pids.count else { return "" }
        return " (pid \(pids[rank]))"
    }

    private mutating func followerFinished(job: String, rank: Int, now: Instant) -> [SlotAction] {
        session?.finishedRanks[job, default: []].insert(rank)
        if followers?.jobID == job && followersDone(job) {
            followers = nil
            session?.finishedRanks[job] = nil
            return next(now: now)
        }
        return []
    }

    private func followersDone(_ job: String) -> Bool {
        (session?.finishedRanks[job]?.count ?? 0) >= settings.worldSize - 1
    }

    private mutating func becomeReadyIfAll(now: Instant) -> [SlotAction] {
        guard let session, let ready = session.ready, session.isReady else { return [] }
        lastError = nil
        lastState = .ready
        var actions: [SlotAction] = [
            .log(
                .info,
                "worker \((session.pids ?? []).map(String.init).joined(separator: ", ")) ready: \(ready.model) "
                    + "(\(ready.dtype))")
        ]
        if stopping { return actions + stopIfIdle() }
        actions += tryClaim(now: now)
        return actions
    }

    /// The session's rank `rank` closed its stdout: it exited or was killed.
    mutating func eventsEnded(rank: Int, generation: Int, stderrTail: [String], now: Instant) -> [SlotAction] {
        guard let session, session.generation == generation else { return [] }
        if rank > 0 {
            guard !session.closing, session.failure == nil else { return [] }
            let last = stderrTail.last(where: { !$0.isEmpty }).map { "; last log line: \($0.prefix(300))" } ?? ""
            return groupFailed("rank \(rank)\(pidText(rank)) of the group exited\(last)")
        }
        // Rank 0 is gone: the other ranks cannot finish a job alone.
        return settings.worldSize > 1 ? kill(because: nil) : []
    }

    /// Every process of session `generation` has exited; `startError` says why none could be started.
    mutating func sessionEnded(
        generation: Int, exits: [WorkerExit], startError: String? = nil, now: Instant
    )
        -> [SlotAction]
    {
        guard let session, session.generation == generation else { return [] }
        self.session = nil
        let inFlight = [device, encoding].compactMap { $0 }
        device = nil
        encoding = nil
        followers = nil
        prepared = nil
        prepareDue = nil
        readingQueue = false
        if claim == .inFlight {
            // The claim's answer is released when it comes (`claimed` sees no session).
        } else {
            claim = .none
        }
        var actions: [SlotAction] = []
        let exit = exits.first
        if let startError {
            if stopping {
                isStopped = true
                lastState = .stopped
                return []
            }
            actions += startFailed(startError, exit: nil)
        } else if !session.isReady {
            if stopping {
                isStopped = true
                lastState = .stopped
                return []
            }
            var reason = session.failure ?? session.startFailure
            if reason == nil, session.killed, session.pids != nil, !stopping {
                reason = "not ready within \(settings.startupTimeout); killed"
            }
            actions += startFailed(reason ?? Self.exitedUnexpectedly(exit), exit: exit)
        } else if inFlight.isEmpty && (session.closing || stopping) {
            crashes = 0
        } else {
            startFailures = 0
            crashes += 1
            let killedBecause = inFlight.lazy.compactMap(\.killReason).first ?? session.failure.map { .rankDied($0) }
            let description = Self.describe(exit: exit, killedBecause: killedBecause)
            actions.append(.log(.warning, "worker died: \(description)"))
            lastError = description
            for running in inFlight { actions += recover(running, description: description, session: session) }
        }
        if stopping {
            isStopped = true
            lastState = .stopped
            return actions
        }
        restarts += 1
        let unhealthy = startFailures >= settings.unhealthyAfter
        lastState = unhealthy ? .unhealthy : .restarting
        restartAt = now.advanced(by: settings.backoff.delay(afterConsecutiveFailures: max(startFailures, crashes)))
        actions.append(.workerRestarted)
        return actions
    }

    private mutating func startFailed(_ reason: String, exit: WorkerExit?) -> [SlotAction] {
        startFailures += 1
        crashes = 0
        let detail = reason + (exit.map { " (\($0))" } ?? "")
        lastError = detail
        return [.log(.error, "worker failed to start (\(startFailures) in a row): \(detail)")]
    }

    static func exitedUnexpectedly(_ exit: WorkerExit?) -> String {
        WorkerFailure.exited(stderrTail: exit?.stderrTail ?? []).description
    }

    static func describe(exit: WorkerExit?, killedBecause: KillReason?) -> String {
        var text: String
        switch killedBecause {
        case .stalled(let timeout): text = "stalled: no progress for \(timeout), killed"
        case .shutdown: text = "stopped for shutdown"
        case .leaseLost: text = "killed after losing its lease"
        case .rankDied(let reason): text = "\(reason); every rank of the group was stopped"
        case nil: text = "the worker \(exit.map(\.description) ?? "exited")"
        }
        if killedBecause == nil, let last = exit?.stderrTail.last(where: { !$0.isEmpty }) {
            text += "; last log line: \(last.prefix(300))"
        }
        return text
    }

    /// Decides what happens to a job whose worker died.
    private func recover(_ running: RunningJob, description: String, session: Session) -> [SlotAction] {
        let job = running.job
        if running.killReason == .shutdown {
            return [.end(job, running.lease, .released(reason: "stopped for shutdown; left queued"))]
        }
        if running.cancelRequested { return [.end(job, running.lease, .cancelled)] }
        let code = if case .stalled = running.killReason { "worker_stalled" } else { "worker_crashed" }
        let place = running.lastProgress.map { " during \($0.stage) \($0.step)/\($0.total)" } ?? ""
        let message = description + place
        let decision = RetryPolicy.decide(
            .workerDied(description: message), attempts: running.lease.attempt, maxAttempts: settings.maxAttempts,
            memorySaving: job.memorySaving)
        return [end(running, decision, code: code, message: message)]
    }

    private func end(_ running: RunningJob, _ decision: RetryDecision, code: String, message: String) -> SlotAction {
        switch decision {
        case .retry(let memorySaving):
            .end(
                running.job, running.lease,
                .failed(code: code, message: message, retry: true, memorySaving: memorySaving))
        case .fail(let final):
            .end(running.job, running.lease, .failed(code: code, message: final, retry: false, memorySaving: false))
        }
    }

    // MARK: - Jobs

    private mutating func tryClaim(now: Instant) -> [SlotAction] {
        guard !stopping, let session, session.isReady, !session.killed, !session.closing, session.failure == nil,
            device == nil, followers == nil, claim != .inFlight, !(encoding.map(Self.encodesAlone) ?? false)
        else { return stopIfIdle() }
        claim = .inFlight
        return [.claim]
    }

    /// A job whose last attempt died with its worker writes its files alone: had the next job crashed the worker
    /// while it was encoding, the crash cost this job an attempt too, and a job that kills its worker every time
    /// (claimed next again and again) would use up its neighbour's attempts with its own.
    static func encodesAlone(_ running: RunningJob) -> Bool {
        ["worker_crashed", "worker_stalled"].contains(running.job.errorCode)
    }

    /// The store's answer to `claim`: the job this slot now holds, or nil when nothing is queued.
    mutating func claimed(_ claimed: (job: Job, lease: Lease)?, now: Instant) -> [SlotAction] {
        claim = .none
        waiting = nil
        let again = workArrivedDuringClaim
        workArrivedDuringClaim = false
        guard let (job, lease) = claimed else {
            if again { return tryClaim(now: now) }
            claim = .idle(until: now.advanced(by: settings.idleRecheck))
            return stopIfIdle()
        }
        guard !stopping, let session, session.isReady, !session.killed, !session.closing else {
            return [.end(job, lease, .released(reason: "claimed as the slot stopped; left queued"))] + stopIfIdle()
        }
        device = RunningJob(job: job, lease: lease, now: now, cancelCheck: settings.cancelCheck)
        self.session?.loraKey = job.spec.loraKey
        lastState = .busy
        if settings.preparesNext { prepareDue = now }
        return [
            .log(.info, "job \(job.id) attempt \(lease.attempt) started"),
            .run(job, lease, keepCheckpoint: settings.worldSize == 1, checkpoints: settings.checkpoints),
        ]
    }

    /// The claim could not be made: the store failed.
    mutating func claimFailed(_ error: String, now: Instant) -> [SlotAction] {
        claim = .idle(until: now.advanced(by: settings.claimRetry))
        return [.log(.error, "claiming a job failed: \(error)")] + stopIfIdle()
    }

    /// The claim was not made because the disk has too little room for a job's files: wait, do not fail jobs.
    mutating func claimDeferred(_ reason: String, now: Instant) -> [SlotAction] {
        claim = .idle(until: now.advanced(by: settings.diskRecheck))
        let first = waiting == nil
        waiting = reason
        return (first ? [.log(.warning, "not taking jobs: \(reason)")] : []) + stopIfIdle()
    }

    /// Work was queued: an idle slot claims now.
    mutating func workArrived(now: Instant) -> [SlotAction] {
        if claim == .inFlight { workArrivedDuringClaim = true }
        guard case .idle = claim else { return [] }
        claim = .none
        return tryClaim(now: now)
    }

    /// The job's device work or whole attempt ended: claim the next one (a group waits for its other ranks first).
    private mutating func next(now: Instant) -> [SlotAction] {
        if device == nil { lastState = encoding == nil ? .ready : .busy }
        return tryClaim(now: now)
    }

    private mutating func deviceEvent(_ event: WorkerEvent, filesPresent: Bool, now: Instant) -> [SlotAction] {
        guard var running = device else { return [] }
        running.lastEvent = now
        let (actions, outcome) = follow(event, of: &running, filesPresent: filesPresent, onBoard: true, now: now)
        switch outcome {
        case .continuing:
            device = running
            return actions
        case .deviceDone where settings.worldSize == 1 && encoding == nil:
            device = nil
            encoding = running
            return actions + next(now: now)
        case .deviceDone:
            device = running
            return actions
        case .finished:
            device = nil
            if settings.worldSize > 1, !followersDone(running.job.id) {
                followers = (running.job.id, now.advanced(by: settings.stallTimeout))
                return actions
            }
            session?.finishedRanks[running.job.id] = nil
            return actions + next(now: now)
        }
    }

    private mutating func encodingEvent(_ event: WorkerEvent, filesPresent: Bool, now: Instant) -> [SlotAction] {
        guard var running = encoding else { return [] }
        running.lastEvent = now
        let (actions, outcome) = follow(
            event, of: &running, filesPresent: filesPresent, onBoard: device == nil, now: now)
        if outcome == .finished {
            encoding = nil
            return actions + next(now: now)
        }
        encoding = running
        return actions
    }

    enum Followed: Sendable, Equatable {
        case continuing
        /// The job reported its `encoding` stage: its device work is over.
        case deviceDone
        /// Its result or error was recorded.
        case finished
    }

    /// Records one event of a running job: progress (and the lease renewal it carries), resume notices, and the
    /// final result or error.
    private mutating func follow(
        _ event: WorkerEvent, of running: inout RunningJob, filesPresent: Bool, onBoard: Bool, now: Instant
    ) -> ([SlotAction], Followed) {
        let job = running.job
        let lease = running.lease
        switch event {
        case .progress(let progress):
            let jobProgress = JobProgress(stage: progress.stage.rawValue, step: progress.step, total: progress.total)
            running.lastProgress = jobProgress
            var actions: [SlotAction] = []
            if progress.stage == .denoising {
                if progress.step <= 1 || running.denoiseStart == nil { running.denoiseStart = now }
                if let start = running.denoiseStart, progress.step > 1 {
                    let elapsed = start.duration(to: now).seconds
                    if elapsed > 0 {
                        let rate = (Double(progress.step) - 1) / elapsed
                        if onBoard { stepsPerSecond = rate }
                        actions.append(.stepsPerSecond(rate))
                    }
                }
            }
            actions.append(.progress(job, lease, jobProgress))
            if running.lastRenewal.duration(to: now) >= settings.progressRenewal && !running.renewing {
                running.lastRenewal = now
                running.renewing = true
                actions.append(.renew(lease, progress: jobProgress))
            }
            return (actions, progress.stage == .encoding && progress.step == 0 ? .deviceDone : .continuing)
        case .result(let result):
            guard filesPresent else {
                let failure = WorkerEvent.Failure(
                    job: job.id, code: .internal, message: "the worker reported a result but its files are missing")
                return (failed(failure, running), .finished)
            }
            crashes = 0
            return ([.end(job, lease, .succeeded(Self.outputs(of: result)))], .finished)
        case .error(let failure):
            return (failed(failure, running), .finished)
        case .resumed(let resumed):
            let message = "resumed from the checkpoint at step \(resumed.step) of \(resumed.total)"
            return (
                [.log(.info, "job \(job.id): \(message)"), .note(job, lease, kind: "resumed", message: message)],
                .continuing
            )
        case .checkpointRejected(let rejected):
            let message = "checkpoint ignored, starting over: \(rejected.reason)"
            return (
                [
                    .log(.warning, "job \(job.id): \(message)"),
                    .note(job, lease, kind: "checkpoint_rejected", message: message),
                ], .continuing
            )
        default:
            return ([], .continuing)
        }
    }

    private func failed(_ failure: WorkerEvent.Failure, _ running: RunningJob) -> [SlotAction] {
        if failure.code == .cancelled { return [.end(running.job, running.lease, .cancelled)] }
        let decision = RetryPolicy.decide(
            .workerError(code: failure.code, message: failure.message), attempts: running.lease.attempt,
            maxAttempts: settings.maxAttempts, memorySaving: running.job.memorySaving)
        return [end(running, decision, code: failure.code.rawValue, message: failure.message)]
    }

    static func outputs(of result: WorkerEvent.Result) -> JobOutputs {
        let seconds = result.seconds
        var perStage = [
            "text_encoding": seconds.textEncoding, "denoising": seconds.denoising, "vae_decode": seconds.vaeDecode,
            "encoding": seconds.encoding, "total": seconds.total,
        ]
        if let interpolating = seconds.interpolating { perStage["interpolating"] = interpolating }
        if let imageEncoding = seconds.imageEncoding { perStage["image_encoding"] = imageEncoding }
        if let loraSwitch = seconds.loraSwitch { perStage["lora_switch"] = loraSwitch }
        if let loraLoad = seconds.loraLoad { perStage["lora_load"] = loraLoad }
        return JobOutputs(
            directory: result.outputs.dir, video: result.outputs.video, metadata: result.outputs.metadata,
            framesDirectory: result.outputs.framesDir, frameCount: result.outputs.frameCount,
            secondsPerStage: perStage)
    }

    // MARK: - Leases and cancels

    /// The store's answer to `renew`: whether the slot still holds the lease.
    mutating func renewed(_ lease: Lease, held: Bool, now: Instant) -> [SlotAction] {
        guard update(lease: lease, { $0.renewing = false }) else { return [] }
        if held { return [] }
        // Someone else owns the job now (its lease expired, or it was requeued): stop working on it.
        return [.log(.warning, "lost the lease of job \(lease.jobID); stopping the worker")] + kill(because: .leaseLost)
    }

    /// `renew` failed (the store is unreachable); the next renewal tries again.
    mutating func renewFailed(_ lease: Lease, error: String, now: Instant) -> [SlotAction] {
        guard update(lease: lease, { $0.renewing = false }) else { return [] }
        return [.log(.error, "renewing the lease of \(lease.jobID) failed: \(error)")]
    }

    /// Someone asked to cancel the job (on this node's API, or seen in the store). True when this slot runs it.
    @discardableResult
    mutating func cancelRequested(jobID: String, now: Instant) -> (runsIt: Bool, actions: [SlotAction]) {
        for which in [\Self.device, \Self.encoding] {
            guard var running = self[keyPath: which], running.job.id == jobID else { continue }
            running.cancelRequested = true
            var actions: [SlotAction] = []
            if !running.cancelSent {
                running.cancelSent = true
                actions.append(.send(.cancel(job: jobID)))
            }
            self[keyPath: which] = running
            return (true, actions)
        }
        return (false, [])
    }

    /// The store's answer to `checkCancel`.
    mutating func cancelChecked(jobID: String, requested: Bool, now: Instant) -> [SlotAction] {
        let next = now.advanced(by: settings.cancelCheck)
        for which in [\Self.device, \Self.encoding] where self[keyPath: which]?.job.id == jobID {
            self[keyPath: which]?.checkingCancel = false
            self[keyPath: which]?.nextCancelCheck = next
        }
        return requested ? cancelRequested(jobID: jobID, now: now).actions : []
    }

    /// The store's answer to `readQueue`: the oldest queued jobs. Prepares the prompt of the one most likely to run
    /// next (highest priority, then oldest); it is not claimed, and if another slot takes it the embedding goes
    /// unused.
    mutating func queueRead(_ queued: [Job], now: Instant) -> [SlotAction] {
        readingQueue = false
        guard device != nil, let top = queued.map(\.priority).max(),
            let next = queued.first(where: { $0.priority == top }),
            next.id != prepared
        else { return [] }
        prepared = next.id
        return [
            .send(.prepare(.init(prompt: next.spec.prompt, negativePrompt: next.spec.negativePrompt))),
            .log(.debug, "sent prepare for job \(next.id)"),
        ]
    }

    private mutating func update(lease: Lease, _ change: (inout RunningJob) -> Void) -> Bool {
        if device?.lease == lease {
            change(&device!)
            return true
        }
        if encoding?.lease == lease {
            change(&encoding!)
            return true
        }
        return false
    }

    // MARK: - Time

    /// The time has come for something: a restart, a start that took too long, a stalled job, a renewal, a cancel
    /// check, the end of the grace, a group's other ranks that did not finish, an idle slot's next claim.
    mutating func tick(now: Instant) -> [SlotAction] {
        var actions: [SlotAction] = []
        if session == nil, let restartAt, now >= restartAt, !stopping, !isStopped { actions += spawn(now: now) }
        if let session, !session.isReady, session.pids != nil, !session.killed, now >= session.startDeadline {
            actions.append(.log(.error, "the worker was not ready within \(settings.startupTimeout); killing it"))
            actions += kill(because: nil)
        }
        for which in [\Self.device, \Self.encoding] {
            guard var running = self[keyPath: which], session?.killed == false else { continue }
            if running.lastEvent.duration(to: now) >= settings.stallTimeout {
                actions.append(
                    .log(
                        .warning, "job \(running.job.id): no progress for \(settings.stallTimeout); killing the worker")
                )
                actions += kill(because: .stalled(settings.stallTimeout))
                break
            }
            if let graceDeadline, now >= graceDeadline {
                actions.append(
                    .log(.warning, "job \(running.job.id): shutdown grace is over; stopping it and leaving it queued"))
                actions += kill(because: .shutdown)
                break
            }
            if running.lastRenewal.duration(to: now) >= settings.renewInterval && !running.renewing {
                running.lastRenewal = now
                running.renewing = true
                actions.append(.renew(running.lease, progress: running.lastProgress))
            }
            if !running.cancelSent && !running.checkingCancel && now >= running.nextCancelCheck {
                running.checkingCancel = true
                actions.append(.checkCancel(jobID: running.job.id))
            }
            self[keyPath: which] = running
        }
        if settings.preparesNext, device != nil, !readingQueue, let due = prepareDue, now >= due {
            readingQueue = true
            prepareDue = now.advanced(by: settings.prepareInterval)
            actions.append(.readQueue)
        }
        if let followers, now >= followers.deadline {
            self.followers = nil
            actions += groupFailed(
                "a rank did not finish job \(followers.jobID) within \(settings.stallTimeout) of rank 0")
        }
        if case .idle(let until) = claim, now >= until {
            claim = .none
            actions += tryClaim(now: now)
        }
        return actions
    }

    /// When `tick` next has something to do; nil when only an event can move the slot.
    var nextDeadline: Instant? {
        var deadlines: [Instant] = []
        if session == nil, let restartAt, !stopping { deadlines.append(restartAt) }
        if let session, !session.isReady, session.pids != nil, !session.killed {
            deadlines.append(session.startDeadline)
        }
        if session?.killed == false {
            for running in [device, encoding].compactMap({ $0 }) {
                deadlines.append(running.lastEvent.advanced(by: settings.stallTimeout))
                if let graceDeadline { deadlines.append(graceDeadline) }
                if !running.renewing { deadlines.append(running.lastRenewal.advanced(by: settings.renewInterval)) }
                if !running.cancelSent && !running.checkingCancel { deadlines.append(running.nextCancelCheck) }
            }
        }
        if settings.preparesNext, device != nil, !readingQueue, let prepareDue { deadlines.append(prepareDue) }
        if let followers { deadlines.append(followers.deadline) }
        if case .idle(let until) = claim { deadlines.append(until) }
        return deadlines.min()
    }

    // MARK: - What it shows

    var status: Status {
        let shown = device ?? encoding
        let progress = shown?.lastProgress
        var state = isStopped ? .stopped : lastState
        if !isStopped, session?.isReady == true { state = shown == nil ? .ready : .busy }
        return Status(
            state: state, pids: session?.pids, job: shown?.job.id, stage: progress?.stage,
            step: shown == nil ? nil : (progress?.step ?? 0),
            totalSteps: shown == nil ? nil : (progress?.total ?? shown?.job.spec.steps),
            stepsPerSecond: stepsPerSecond, freeMemoryBytes: session?.ready?.freeMemoryBytes,
            totalMemoryBytes: session?.ready?.totalMemoryBytes, restarts: restarts, lastError: lastError,
            waiting: waiting)
    }

    /// The jobs this slot's worker runs now.
    var runningJobIDs: Set<String> { Set([device?.job.id, encoding?.job.id].compactMap { $0 }) }
}
