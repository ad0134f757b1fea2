import Foundation
import Logging
import ReelCore
import ReelStore
import ReelWorker
import ReelWorkerProtocol
import Synchronization

/// Keeps one warm worker (or one parallel group of workers) on one slot and feeds it jobs from the store, one at a
/// time.
///
/// The worker is restarted with backoff whenever it exits; the job it was running is requeued or failed by the
/// retry policy. A worker that sends nothing for the stall timeout is killed with its process group. A parallel
/// group is one slot: every rank gets the same requests, rank 0's events drive the job, and when any rank exits
/// or stalls every rank is killed and the group restarts as a whole. A split slot, while a job runs, sends the
/// next queued job's prompt to the worker with `prepare`, so its text encoder works while the other device
/// denoises.
final class SlotRunner: Sendable {
    let slot: Slot
    let configuration: SchedulerConfiguration
    let store: any JobStore
    let bus: EventBus
    let board: StatusBoard
    let metrics: SchedulerMetrics
    let logger: Logger
    let doorbell: Doorbell
    let shutdown: ShutdownState
    let jobDebug: (@Sendable (Job) -> [String: JSONValue]?)?

    /// The worker connection and job of the moment, for cancel requests from the API.
    private struct Current {
        var group: WorkerGroup?
        var jobID: String?
        /// The job whose frames are decoded and whose files the worker is still writing, while `jobID` denoises.
        var encodingJobID: String?
    }
    private let current = Mutex(Current())

    init(
        slot: Slot, configuration: SchedulerConfiguration, store: any JobStore, bus: EventBus, board: StatusBoard,
        metrics: SchedulerMetrics, logger: Logger, doorbell: Doorbell, shutdown: ShutdownState,
        jobDebug: (@Sendable (Job) -> [String: JSONValue]?)?
    ) {
        self.slot = slot
        self.configuration = configuration
        self.store = store
        self.bus = bus
        self.board = board
        self.metrics = metrics
        var logger = logger
        logger[metadataKey: "slot"] = "\(slot.id)"
        self.logger = logger
        self.doorbell = doorbell
        self.shutdown = shutdown
        self.jobDebug = jobDebug
    }

    var owner: String { "\(configuration.node)/\(slot.id)" }

    /// Asks the worker to stop `jobID` at its next step, if this slot runs it. True when it does.
    func requestCancel(jobID: String) -> Bool {
        let group = current.withLock { $0.jobID == jobID || $0.encodingJobID == jobID ? $0.group : nil }
        guard let group else { return false }
        try? group.send(.cancel(job: jobID))
        return true
    }

    // MARK: - The worker's life cycle

    /// How one worker's life ended.
    enum WorkerOutcome {
        /// Shutdown: the worker was told to exit.
        case stopped
        /// It never became ready.
        case neverReady(String)
        /// It died, possibly in the middle of a job, or of two: one denoising, the one before it still encoding.
        case died([InFlight])
    }

    /// The job a worker was running when it died, and why it was killed when Reel killed it.
    struct InFlight {
        var job: Job
        var lease: Lease
        var killedBecause: KillReason?
        var progress: JobProgress?
    }

    enum KillReason: Equatable {
        case stalled(Duration)
        case shutdown
        case leaseLost
        /// Another rank of the slot's parallel group exited or stalled.
        case rankDied(String)
    }

    func run() async {
        var startFailures = 0
        var crashes = 0
        while !shutdown.stopping && !Task.isCancelled {
            board.update(slot.id) {
                $0.state = startFailures >= configuration.unhealthyAfter ? .unhealthy : .starting
                $0.setPIDs(nil)
                $0.job = nil
            }
            let (launches, rendezvous) = makeLaunches()
            var outcome = WorkerOutcome.neverReady("the worker could not be started")
            var exit: WorkerExit?
            let slotLogger = logger
            do {
                let (result, exits) = try await WorkerGroup.run(
                    launches, logger: logger, grace: .seconds(5),
                    stderrHandler: { rank, line in slotLogger.debug("engine\(rank > 0 ? " rank \(rank)" : ""): \(line)") }
                ) { group in
                    await self.serve(group)
                }
                outcome = result
                exit = exits.first
            } catch {
                outcome = .neverReady("could not start \(configuration.engine.python): \(error)")
            }
            if let rendezvous { try? FileManager.default.removeItem(atPath: rendezvous) }
            let groupFailure = current.withLock { $0.group?.failure }
            current.withLock { $0 = Current() }

            switch outcome {
            case .stopped:
                crashes = 0
            case .neverReady(let reason):
                startFailures += 1
                let detail = reason + (exit.map { " (\($0))" } ?? "")
                logger.error("worker failed to start (\(startFailures) in a row): \(detail)")
                board.update(slot.id) { $0.lastError = detail }
            case .died(let inFlight):
                startFailures = 0
                crashes += 1
                let description = describe(
                    exit: exit,
                    killedBecause: inFlight.lazy.compactMap(\.killedBecause).first ?? groupFailure.map { .rankDied($0) })
                logger.warning("worker died: \(description)")
                board.update(slot.id) { $0.lastError = description }
                for job in inFlight { await recover(job, description: description) }
            }
            if shutdown.stopping { break }
            metrics.workerRestart(slot: slot.id)
            let unhealthy = startFailures >= configuration.unhealthyAfter
            board.update(slot.id) {
                $0.restarts += 1
                $0.state = unhealthy ? .unhealthy : .restarting
            }
            let delay = configuration.backoff.delay(afterConsecutiveFailures: max(startFailures, crashes))
            await doorbell.wait(upTo: delay, stop: { self.shutdown.stopping })
            // A job that finished cleanly resets the crash count (see serve).
            if case .died = outcome {} else { crashes = 0 }
        }
        board.update(slot.id) {
            $0.state = .stopped
            $0.job = nil
        }
    }

    /// The worker(s) to start for this slot, and the rendezvous file of a parallel group (removed after it stops).
    private func makeLaunches() -> ([WorkerLaunch], String?) {
        var base = WorkerLaunch(
            engine: configuration.engine, device: slot.device, model: configuration.model,
            dataDirectory: configuration.dataDirectory, memorySaving: configuration.memorySaving,
            textDevice: slot.textDevice, memoryBudgetGiB: configuration.memoryBudgetGiB,
            environment: configuration.workerEnvironment)
        base.approximate = configuration.approximate
        guard let devices = slot.rankDevices, devices.count > 1 else { return ([base], nil) }
        // A fresh file per start: torch.distributed's file rendezvous must not find an earlier group's file.
        let directory = configuration.dataDirectory + "/run"
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/\(slot.id)-\(UUID().uuidString.prefix(8)).rendezvous"
        let launches = devices.enumerated().map { rank, device in
            var launch = base
            launch.device = device
            launch.textDevice = nil
            launch.group = .init(rank: rank, worldSize: devices.count, initMethod: "file://" + path)
            return launch
        }
        return (launches, path)
    }

    private func describe(exit: WorkerExit?, killedBecause: KillReason?) -> String {
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

    /// Decides what happens to the job a dead worker was running.
    private func recover(_ inFlight: InFlight, description: String) async {
        let now = Date()
        let job = inFlight.job
        do {
            if inFlight.killedBecause == .shutdown {
                if try await store.release(inFlight.lease, now: now) {
                    publish("requeued", job, state: .queued, message: "stopped for shutdown; left queued")
                }
                return
            }
            if try await store.job(id: job.id)?.cancelRequested == true {
                if try await store.finishCancelled(inFlight.lease, now: now) {
                    discardCheckpoint(of: job)
                    publish("cancelled", job, state: .cancelled)
                    metrics.jobFinished(state: "cancelled")
                }
                return
            }
            let code = inFlight.killedBecause.map { if case .stalled = $0 { "worker_stalled" } else { "worker_crashed" } }
                ?? "worker_crashed"
            let where_ = inFlight.progress.map { " during \($0.stage) \($0.step)/\($0.total)" } ?? ""
            let message = description + where_
            let decision = RetryPolicy.decide(
                .workerDied(description: message), attempts: inFlight.lease.attempt,
                maxAttempts: configuration.maxAttempts, memorySaving: job.memorySaving)
            try await apply(decision, lease: inFlight.lease, job: job, code: code, message: message)
        } catch {
            logger.error("could not record the end of job \(job.id): \(error); its lease will expire")
        }
    }

    private func apply(_ decision: RetryDecision, lease: Lease, job: Job, code: String, message: String) async throws {
        let now = Date()
        metrics.failure(code: code)
        switch decision {
        case .retry(let memorySaving):
            if try await store.fail(lease, code: code, message: message, retry: true, memorySaving: memorySaving, now: now) {
                publish("requeued", job, state: .queued, errorCode: code, message: message)
                doorbell.ring()
            }
        case .fail(let finalMessage):
            if try await store.fail(lease, code: code, message: finalMessage, retry: false, memorySaving: false, now: now) {
                discardCheckpoint(of: job)
                publish("failed", job, state: .failed, errorCode: code, message: finalMessage)
                metrics.jobFinished(state: "failed")
            }
        }
    }

    private func publish(
        _ kind: String, _ job: Job, state: JobState, progress: JobProgress? = nil, errorCode: String? = nil,
        message: String? = nil, attempt: Int? = nil
    ) {
        bus.publish(
            ServerEvent(
                kind: kind, job: job.id, state: state, attempt: attempt ?? job.attempts, progress: progress,
                slot: slot.id, errorCode: errorCode, message: message))
    }

    // MARK: - Serving jobs on a ready worker

    private func serve(_ group: WorkerGroup) async -> WorkerOutcome {
        let connection = group.primary
        var events = connection.events.makeAsyncIterator()
        current.withLock { $0.group = group }
        let followers = Task { await group.followRanks(logger: logger) }
        defer {
            group.close()  // from here on ranks exit because the slot lets them go
            _ = followers
        }
        board.update(slot.id) {
            $0.state = .starting
            $0.setPIDs(group.pids)
        }
        // The model may take long to load, but not forever, and a shutdown must not wait for it.
        let startup = Task {
            let deadline = ContinuousClock.now + configuration.startupTimeout
            while ContinuousClock.now < deadline && !shutdown.stopping {
                try await Task.sleep(for: .milliseconds(100))
            }
            group.killAll()
        }
        defer { startup.cancel() }
        let ready: WorkerEvent.Ready
        do {
            ready = try await connection.awaitReady(&events)
        } catch {
            if shutdown.stopping { return .stopped }
            return .neverReady(group.failure ?? error.description)
        }
        // A group is ready when every rank is.
        while !group.followersReady {
            if let failure = group.failure { return .neverReady(failure) }
            if shutdown.stopping { return .stopped }
            try? await Task.sleep(for: .milliseconds(50))
        }
        startup.cancel()
        board.update(slot.id) {
            $0.state = .ready
            $0.freeMemoryBytes = ready.freeMemoryBytes
            $0.totalMemoryBytes = ready.totalMemoryBytes
            $0.lastError = nil
        }
        let pids = group.pids.map(String.init).joined(separator: ", ")
        logger.info("worker \(pids) ready: \(ready.model), \(slot.summary) (\(ready.dtype))")

        // The job whose device work is done and whose files the worker is still writing, if any (single workers
        // only: a parallel group's ranks take each job together).
        var encoding: RunningJob?
        while true {
            if shutdown.stopping {
                if let tail = encoding, let dead = await drain(tail, group: group, events: &events) {
                    return .died([dead])
                }
                return .stopped
            }
            if group.failure != nil { return .died(encoding.map { [$0.inFlight(group: group)] } ?? []) }
            let claimed: (job: Job, lease: Lease)?
            do {
                let now = Date()
                claimed = try await store.claim(
                    owner: owner, slot: slot.id, leaseExpiresAt: now.addingTimeInterval(configuration.leaseDuration.seconds),
                    now: now)
            } catch {
                logger.error("claiming a job failed: \(error)")
                await doorbell.wait(upTo: .seconds(1), stop: { self.shutdown.stopping })
                continue
            }
            guard let (job, lease) = claimed else {
                // Nothing to overlap with: follow the job still encoding to its end.
                if let tail = encoding {
                    encoding = nil
                    if let dead = await drain(tail, group: group, events: &events) { return .died([dead]) }
                    resetBoard()
                    continue
                }
                await doorbell.wait(upTo: .milliseconds(500), stop: { self.shutdown.stopping })
                continue
            }
            switch await runJob(job, lease: lease, group: group, events: &events, encoding: &encoding) {
            case .died(let inFlight):
                return .died(inFlight)
            case .encoding(let running):
                encoding = running  // the device is free: claim the next job while this one's files are written
                continue
            case .finished:
                break
            }
            if group.size > 1, await !waitForFollowers(of: job, group: group) { return .died([]) }
            resetBoard()
        }
    }

    private func resetBoard() {
        board.update(slot.id) {
            $0.state = .ready
            $0.job = nil
            $0.stage = nil
            $0.step = nil
            $0.totalSteps = nil
        }
    }

    /// How one claimed job's run ended for the slot.
    enum JobRun {
        /// Its result or error came; the worker takes the next job.
        case finished
        /// Its frames are decoded and the worker is writing its files: the device takes the next job meanwhile.
        case encoding(RunningJob)
        /// The worker died with these jobs in flight.
        case died([InFlight])
    }

    /// Runs one claimed job, while following the job before it (`encoding`) to its end if that one is still
    /// writing its files. Returns `.encoding` as soon as this job's device work is done, when the worker is a single
    /// process and no other job is still encoding, so the slot can claim the next job.
    private func runJob(
        _ job: Job, lease: Lease, group: WorkerGroup, events: inout AsyncStream<WorkerEvent>.Iterator,
        encoding: inout RunningJob?
    ) async -> JobRun {
        let outDir = configuration.outputDirectory(jobID: job.id)
        // One set of outputs per job: whatever an earlier attempt left is removed first, except its checkpoint,
        // which the worker checks against the job and resumes from. Parallel groups neither save nor resume
        // checkpoints (their ranks must start every job at the same step), so theirs go too.
        let checkpoints = group.size == 1 && (configuration.checkpointEvery ?? 0) > 0
        Self.clearOutputs(outDir, keeping: group.size == 1 ? Self.checkpointFile : nil)
        try? FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)

        current.withLock { $0.jobID = job.id }
        defer { current.withLock { $0.jobID = nil } }
        board.update(slot.id) {
            $0.state = .busy
            $0.job = job.id
            $0.step = 0
            $0.totalSteps = job.spec.steps
            $0.stage = nil
        }
        publish("started", job, state: .running, attempt: lease.attempt)
        logger.info("job \(job.id) attempt \(lease.attempt) started")

        var request = WorkerRequest.Generate(
            job: job.id, prompt: job.spec.prompt, negativePrompt: job.spec.negativePrompt, width: job.spec.width,
            height: job.spec.height, frames: job.spec.frames, steps: job.spec.steps, guidance: job.spec.guidance,
            guidance2: job.spec.guidance2, seed: job.spec.seed, pngFrames: job.spec.pngFrames, outDir: outDir,
            fps: job.spec.fps, memorySaving: job.memorySaving ? true : nil, interpolate: job.spec.interpolate,
            checkpointEvery: checkpoints ? configuration.checkpointEvery : nil,
            metadata: ["job_id": .string(job.id), "attempt": .number(Double(lease.attempt))])
        if let style = job.spec.style { request.metadata?["style"] = .string(style) }
        if let userPrompt = job.spec.userPrompt { request.metadata?["user_prompt"] = .string(userPrompt) }
        if let seconds = job.spec.requestedSeconds { request.metadata?["requested_seconds"] = .number(seconds) }
        request.debug = jobDebug?(job)
        let running = RunningJob(job: job, lease: lease)
        do {
            try group.send(.generate(request))
        } catch {
            return .died([running, encoding].compactMap { $0?.inFlight(group: group) })
        }
        let watch = running.watch
        running.watchdog = Task { await self.watch(job: job, lease: lease, group: group, state: watch) }

        while let event = await events.next() {
            if let tail = encoding, event.job == tail.job.id {
                tail.watch.touch()
                if await follow(event, of: tail, group: group, onBoard: false) == .finished {
                    tail.watchdog?.cancel()
                    encoding = nil
                    current.withLock { $0.encodingJobID = nil }
                }
                continue
            }
            guard event.job == job.id || event.isWorkerError else { continue }
            running.watch.touch()
            switch await follow(event, of: running, group: group, onBoard: true) {
            case .finished:
                running.watchdog?.cancel()
                return .finished
            case .deviceDone where group.size == 1 && encoding == nil:
                current.withLock { $0.encodingJobID = job.id }
                return .encoding(running)
            case .deviceDone, .continuing:
                continue
            }
        }
        running.watchdog?.cancel()
        encoding?.watchdog?.cancel()
        if group.size > 1 { group.killAll() }  // rank 0 is gone: the others cannot finish the job alone
        return .died([running, encoding].compactMap { $0?.inFlight(group: group) })
    }

    /// Follows a job that is only writing its files to its result or error. Nil when it ended; what was in flight
    /// when the worker died otherwise.
    private func drain(
        _ tail: RunningJob, group: WorkerGroup, events: inout AsyncStream<WorkerEvent>.Iterator
    ) async -> InFlight? {
        current.withLock {
            $0.jobID = tail.job.id
            $0.encodingJobID = nil
        }
        defer { current.withLock { $0.jobID = nil } }
        while let event = await events.next() {
            guard event.job == tail.job.id || event.isWorkerError else { continue }
            tail.watch.touch()
            if await follow(event, of: tail, group: group, onBoard: true) == .finished {
                tail.watchdog?.cancel()
                return nil
            }
        }
        tail.watchdog?.cancel()
        return tail.inFlight(group: group)
    }

    enum Followed: Equatable {
        case continuing
        /// The job reported its `encoding` stage: its device work is over.
        case deviceDone
        /// Its result or error was recorded.
        case finished
    }

    /// Records one event of `running`'s job: progress (and the lease renewal it carries), resume notices, and the
    /// final result or error. `onBoard`: the job is the one `/v1/workers` shows for this slot.
    private func follow(_ event: WorkerEvent, of running: RunningJob, group: WorkerGroup, onBoard: Bool) async
        -> Followed
    {
        let job = running.job
        let lease = running.lease
        switch event {
        case .progress(let progress):
            let jobProgress = JobProgress(stage: progress.stage.rawValue, step: progress.step, total: progress.total)
            running.watch.progress(jobProgress)
            var rate: Double?
            if progress.stage == .denoising {
                if progress.step <= 1 || running.denoiseStart == nil { running.denoiseStart = ContinuousClock.now }
                if let start = running.denoiseStart, progress.step > 1 {
                    let elapsed = (ContinuousClock.now - start).seconds
                    if elapsed > 0 { rate = Double(progress.step - 1) / elapsed }
                }
            }
            if let rate { metrics.stepsPerSecond(slot: slot.id, rate) }
            if onBoard {
                board.update(slot.id) {
                    $0.stage = progress.stage.rawValue
                    $0.step = progress.step
                    $0.totalSteps = progress.total
                    if let rate { $0.stepsPerSecond = rate }
                }
            }
            publish("progress", job, state: .running, progress: jobProgress, attempt: lease.attempt)
            if ContinuousClock.now - running.lastRenewal >= .milliseconds(500) {
                running.lastRenewal = ContinuousClock.now
                await renew(lease, progress: jobProgress, watch: running.watch, group: group)
            }
            return progress.stage == .encoding && progress.step == 0 ? .deviceDone : .continuing
        case .result(let result):
            await finish(job, lease: lease, result: result)
            return .finished
        case .error(let failure):
            await handle(failure, job: job, lease: lease)
            return .finished
        case .resumed(let resumed):
            let message = "resumed from the checkpoint at step \(resumed.step) of \(resumed.total)"
            logger.info("job \(job.id): \(message)")
            try? await store.appendEvent(jobID: job.id, kind: "resumed", message: message, now: Date())
            publish("resumed", job, state: .running, message: message, attempt: lease.attempt)
            return .continuing
        case .checkpointRejected(let rejected):
            let message = "checkpoint ignored, starting over: \(rejected.reason)"
            logger.warning("job \(job.id): \(message)")
            try? await store.appendEvent(jobID: job.id, kind: "checkpoint_rejected", message: message, now: Date())
            publish("checkpoint_rejected", job, state: .running, message: message, attempt: lease.attempt)
            return .continuing
        default:
            return .continuing
        }
    }

    /// After rank 0's final event, waits for every other rank's: the group takes the next job together. A rank that
    /// does not finish within the stall timeout breaks the group, which then restarts.
    private func waitForFollowers(of job: Job, group: WorkerGroup) async -> Bool {
        defer { group.forget(job.id) }
        let deadline = ContinuousClock.now + configuration.stallTimeout
        while !group.followersFinished(job.id) {
            if group.failure != nil { return false }
            if ContinuousClock.now > deadline {
                group.fail("a rank did not finish job \(job.id) within \(configuration.stallTimeout) of rank 0")
                return false
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return true
    }

    /// `split` slots: tells the worker the prompt of the job most likely to come next (highest priority, then
    /// oldest, among the oldest queued), so its text encoder prepares it while this job denoises. The job is not
    /// claimed; another slot may take it, and the embedding then just goes unused.
    private func prepareNext(group: WorkerGroup, after prepared: String?) async -> String? {
        guard let queued = try? await store.jobs(matching: JobQuery(state: .queued, order: .oldestFirst, limit: 32)),
            let top = queued.map(\.priority).max(), let next = queued.first(where: { $0.priority == top }),
            next.id != prepared
        else { return prepared }
        try? group.send(.prepare(.init(prompt: next.spec.prompt, negativePrompt: next.spec.negativePrompt)))
        logger.debug("sent prepare for job \(next.id)")
        return next.id
    }

    /// The name of the engine's checkpoint file in a job's directory.
    static let checkpointFile = "checkpoint.pt"

    /// A job that ended for good will not resume: its checkpoint only takes space.
    private func discardCheckpoint(of job: Job) {
        try? FileManager.default.removeItem(atPath: configuration.outputDirectory(jobID: job.id) + "/" + Self.checkpointFile)
    }

    /// Removes everything in a job's directory but `kept`.
    static func clearOutputs(_ directory: String, keeping kept: String?) {
        let fileManager = FileManager.default
        guard let entries = try? fileManager.contentsOfDirectory(atPath: directory) else { return }
        for entry in entries where entry != kept {
            try? fileManager.removeItem(atPath: directory + "/" + entry)
        }
    }

    private func renew(_ lease: Lease, progress: JobProgress?, watch: JobWatch, group: WorkerGroup) async {
        let now = Date()
        do {
            let held = try await store.renew(
                lease, until: now.addingTimeInterval(configuration.leaseDuration.seconds), progress: progress, now: now)
            if !held {
                // Someone else owns the job now (its lease expired, or it was cancelled): stop working on it.
                logger.warning("lost the lease of job \(lease.jobID); stopping the worker")
                watch.kill(.leaseLost)
                group.killAll()
            }
        } catch {
            logger.error("renewing the lease of \(lease.jobID) failed: \(error)")
        }
    }

    /// Runs beside a job: kills a stalled worker, stops the job when the shutdown grace ends, renews the lease
    /// while the worker is alive, and forwards cancel requests made on other nodes.
    private func watch(job: Job, lease: Lease, group: WorkerGroup, state: JobWatch) async {
        var lastRenewal = ContinuousClock.now
        var lastCancelCheck = ContinuousClock.now
        var cancelSent = false
        var lastPrepare = ContinuousClock.now - .seconds(1)
        var prepared: String?
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(100))
            if Task.isCancelled { return }
            let now = ContinuousClock.now
            if now - state.lastEvent > configuration.stallTimeout {
                logger.warning("job \(job.id): no progress for \(configuration.stallTimeout); killing the worker")
                state.kill(.stalled(configuration.stallTimeout))
                group.killAll()
                return
            }
            if shutdown.graceExpired {
                logger.warning("job \(job.id): shutdown grace is over; stopping it and leaving it queued")
                state.kill(.shutdown)
                group.killAll()
                return
            }
            if now - lastRenewal >= configuration.leaseDuration / 3 {
                lastRenewal = now
                await renew(lease, progress: state.lastProgress, watch: state, group: group)
            }
            if !cancelSent && now - lastCancelCheck >= .seconds(1) {
                lastCancelCheck = now
                if (try? await store.job(id: job.id))?.cancelRequested == true {
                    cancelSent = true
                    try? group.send(.cancel(job: job.id))
                }
            }
            if slot.textDevice != nil && now - lastPrepare >= .seconds(1) {
                lastPrepare = now
                prepared = await prepareNext(group: group, after: prepared)
            }
        }
    }

    private func finish(_ job: Job, lease: Lease, result: WorkerEvent.Result) async {
        let fileManager = FileManager.default
        guard fileManager.fileExists(atPath: result.outputs.video), fileManager.fileExists(atPath: result.outputs.metadata)
        else {
            await handle(
                WorkerEvent.Failure(
                    job: job.id, code: .internal, message: "the worker reported a result but its files are missing"),
                job: job, lease: lease)
            return
        }
        let seconds = result.seconds
        var perStage = [
            "text_encoding": seconds.textEncoding, "denoising": seconds.denoising, "vae_decode": seconds.vaeDecode,
            "encoding": seconds.encoding, "total": seconds.total,
        ]
        if let interpolating = seconds.interpolating { perStage["interpolating"] = interpolating }
        let outputs = JobOutputs(
            directory: result.outputs.dir, video: result.outputs.video, metadata: result.outputs.metadata,
            framesDirectory: result.outputs.framesDir, frameCount: result.outputs.frameCount, secondsPerStage: perStage)
        do {
            if try await store.complete(lease, outputs: outputs, now: Date()) {
                publish("succeeded", job, state: .succeeded, attempt: lease.attempt)
                metrics.jobFinished(state: "succeeded")
                for (stage, value) in perStage where stage != "total" { metrics.stageSeconds(stage, value) }
                logger.info("job \(job.id) succeeded in \(String(format: "%.2f", seconds.total)) s")
            } else {
                logger.warning("job \(job.id): result of attempt \(lease.attempt) dropped; the lease is no longer current")
            }
        } catch {
            logger.error("recording the result of \(job.id) failed: \(error)")
        }
    }

    private func handle(_ failure: WorkerEvent.Failure, job: Job, lease: Lease) async {
        do {
            if failure.code == .cancelled {
                if try await store.finishCancelled(lease, now: Date()) {
                    discardCheckpoint(of: job)
                    publish("cancelled", job, state: .cancelled, attempt: lease.attempt)
                    metrics.jobFinished(state: "cancelled")
                }
                return
            }
            let decision = RetryPolicy.decide(
                .workerError(code: failure.code, message: failure.message), attempts: lease.attempt,
                maxAttempts: configuration.maxAttempts, memorySaving: job.memorySaving)
            try await apply(decision, lease: lease, job: job, code: failure.code.rawValue, message: failure.message)
        } catch {
            logger.error("recording the failure of \(job.id) failed: \(error)")
        }
    }
}

/// What the watchdog and the event loop share about the running job.
final class JobWatch: Sendable {
    private struct State {
        var lastEvent = ContinuousClock.now
        var lastProgress: JobProgress?
        var killReason: SlotRunner.KillReason?
    }
    private let state = Mutex(State())

    func touch() { state.withLock { $0.lastEvent = ContinuousClock.now } }
    func progress(_ progress: JobProgress) { state.withLock { $0.lastProgress = progress } }
    func kill(_ reason: SlotRunner.KillReason) { state.withLock { if $0.killReason == nil { $0.killReason = reason } } }

    var lastEvent: ContinuousClock.Instant { state.withLock { $0.lastEvent } }
    var lastProgress: JobProgress? { state.withLock { $0.lastProgress } }
    var killReason: SlotRunner.KillReason? { state.withLock { $0.killReason } }
}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

/// A claimed job the slot's worker is running: what the event loop and its watchdog share.
final class RunningJob {
    let job: Job
    let lease: Lease
    let watch = JobWatch()
    var watchdog: Task<Void, Never>?
    var lastRenewal = ContinuousClock.now
    var denoiseStart: ContinuousClock.Instant?

    init(job: Job, lease: Lease) {
        self.job = job
        self.lease = lease
    }

    /// What the slot knows of the job if its worker dies now.
    func inFlight(group: WorkerGroup) -> SlotRunner.InFlight {
        SlotRunner.InFlight(
            job: job, lease: lease, killedBecause: watch.killReason ?? group.failure.map { .rankDied($0) },
            progress: watch.lastProgress)
    }
}

extension WorkerEvent {
    /// An error about the worker rather than one job (it ends whatever job is running).
    fileprivate var isWorkerError: Bool {
        if case .error(let failure) = self { return failure.job == nil }
        return false
    }
}
