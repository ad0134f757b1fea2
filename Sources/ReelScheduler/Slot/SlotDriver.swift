import Foundation
import Logging
import ReelCore
import ReelStore
import ReelWorker
import ReelWorkerProtocol
import Synchronization

/// What the scheduler needs of a slot: run it until it stops, and forward cancels to it.
protocol SlotRunning: Sendable {
    var slot: Slot { get }
    /// Runs the slot until its layout stops and its worker has exited.
    func run() async
    /// Asks the worker to stop `jobID` at its next step, if this slot runs it. True when it does.
    func requestCancel(jobID: String) -> Bool
}

/// Runs one slot: feeds a `SlotStateMachine` every event and performs the actions it returns. The only state it
/// keeps is what I/O needs (the live worker sessions, the pending timers); every decision is the machine's.
///
/// Concurrency is structured: one loop owns the machine and reads one mailbox; worker sessions, timers, the
/// doorbell and the shutdown are child tasks that post to it; store calls run one at a time, in order, on one child
/// task and post their answers back. `requestCancel` is the one way in from outside, and posts too.
final class SlotDriver<C: Clock>: SlotRunning where C.Duration == Duration {
    let slot: Slot
    let configuration: SchedulerConfiguration
    let store: any JobStore
    let board: StatusBoard
    let metrics: SchedulerMetrics
    let logger: Logger
    let doorbell: Doorbell
    let shutdown: ShutdownState
    let jobDebug: (@Sendable (Job) -> [String: JSONValue]?)?
    let spawner: any WorkerSpawner
    let clock: C
    let settings: SlotStateMachine<C.Instant>.Settings
    private let mailbox = Mutex<AsyncStream<Input>.Continuation?>(nil)
    private let running = Mutex<Set<String>>([])

    init(
        slot: Slot, configuration: SchedulerConfiguration, store: any JobStore, board: StatusBoard,
        metrics: SchedulerMetrics, logger: Logger, doorbell: Doorbell, shutdown: ShutdownState,
        jobDebug: (@Sendable (Job) -> [String: JSONValue]?)?, spawner: any WorkerSpawner, clock: C
    ) {
        self.slot = slot
        self.configuration = configuration
        self.store = store
        self.board = board
        self.metrics = metrics
        var logger = logger
        logger[metadataKey: "slot"] = "\(slot.id)"
        self.logger = logger
        self.doorbell = doorbell
        self.shutdown = shutdown
        self.jobDebug = jobDebug
        self.spawner = spawner
        self.clock = clock
        var settings = SlotStateMachine<C.Instant>.Settings()
        settings.worldSize = slot.worldSize
        settings.maxAttempts = configuration.maxAttempts
        settings.stallTimeout = configuration.stallTimeout
        settings.startupTimeout = configuration.startupTimeout
        settings.leaseDuration = configuration.leaseDuration
        settings.unhealthyAfter = configuration.unhealthyAfter
        settings.backoff = configuration.backoff
        settings.checkpoints = slot.worldSize == 1 && (configuration.checkpointEvery ?? 0) > 0
        settings.preparesNext = slot.textDevice != nil
        self.settings = settings
    }

    var owner: String { "\(configuration.node)/\(slot.id)" }

    func requestCancel(jobID: String) -> Bool {
        guard running.withLock({ $0.contains(jobID) }) else { return false }
        mailbox.withLock { _ = $0?.yield(.cancelRequested(jobID)) }
        return true
    }

    /// Everything that can happen to the slot, as the loop receives it.
    enum Input: Sendable {
        case spawned(generation: Int, WorkerSession)
        case worker(generation: Int, rank: Int, WorkerEvent, filesPresent: Bool)
        case eventsEnded(generation: Int, rank: Int, stderrTail: [String])
        case sessionEnded(generation: Int, exits: [WorkerExit], startError: String?)
        case claimed(Job, Lease)
        case nothingQueued
        case claimFailed(String)
        case claimDeferred(String)
        case renewed(Lease, held: Bool)
        case renewFailed(Lease, String)
        case cancelRequested(String)
        case cancelChecked(String, requested: Bool)
        case queueRead([Job])
        case workArrived
        case shutdown(grace: Duration?)
        case tick
    }

    /// The store calls, performed one at a time in the order the machine asked for them.
    private enum StoreCall: Sendable {
        /// Claim, preferring a job of the LoRA set the workers hold.
        case claim(loraKey: String)
        case renew(Lease, JobProgress?)
        case checkCancel(String)
        case readQueue
        case end(Job, Lease, JobEnd)
        case note(Job, Lease, kind: String, message: String)
        case progress(JobUpdate)
    }

    func run() async {
        let (inputs, post) = AsyncStream<Input>.makeStream()
        let (calls, call) = AsyncStream<StoreCall>.makeStream()
        mailbox.withLock { $0 = post }
        await withTaskGroup(of: Void.self) { outer in
            outer.addTask { await self.perform(calls, post: post) }
            await withDiscardingTaskGroup { group in
                group.addTask {
                    for await _ in self.doorbell.rings() { post.yield(.workArrived) }
                }
                group.addTask {
                    for await grace in self.shutdown.changes() { post.yield(.shutdown(grace: grace)) }
                }
                var loop = Loop(machine: SlotStateMachine(settings: settings))
                let actions = loop.machine.start(now: clock.now)
                perform(actions, loop: &loop, group: &group, call: call, post: post)
                for await input in inputs {
                    let now = clock.now
                    let actions = loop.handle(input, now: now)
                    perform(actions, loop: &loop, group: &group, call: call, post: post)
                    show(loop.machine)
                    if loop.machine.isStopped { break }
                    schedule(&loop, group: &group, post: post, now: now)
                }
                group.cancelAll()
            }
            mailbox.withLock { $0 = nil }
            post.finish()
            call.finish()  // the calls already asked for (the last jobs' ends) still run
        }
    }

    /// The loop's own state: the machine, the live sessions, the timers that are set.
    private struct Loop {
        var machine: SlotStateMachine<C.Instant>
        var sessions: [Int: WorkerSession] = [:]
        /// Sessions the machine asked to kill before their processes existed.
        var killOnArrival: Set<Int> = []
        var timers: [C.Instant] = []
        var shown: SlotStateMachine<C.Instant>.Status?

        mutating func handle(_ input: Input, now: C.Instant) -> [SlotAction] {
            switch input {
            case .spawned(let generation, let session):
                sessions[generation] = session
                if killOnArrival.remove(generation) != nil { session.killAll() }
                return machine.spawned(generation: generation, pids: session.pids, now: now)
            case .worker(let generation, let rank, let event, let filesPresent):
                return machine.workerEvent(
                    event, rank: rank, generation: generation, filesPresent: filesPresent, now: now)
            case .eventsEnded(let generation, let rank, let tail):
                return machine.eventsEnded(rank: rank, generation: generation, stderrTail: tail, now: now)
            case .sessionEnded(let generation, let exits, let startError):
                sessions[generation] = nil
                return machine.sessionEnded(generation: generation, exits: exits, startError: startError, now: now)
            case .claimed(let job, let lease): return machine.claimed((job, lease), now: now)
            case .nothingQueued: return machine.claimed(nil, now: now)
            case .claimFailed(let error): return machine.claimFailed(error, now: now)
            case .claimDeferred(let reason): return machine.claimDeferred(reason, now: now)
            case .renewed(let lease, let held): return machine.renewed(lease, held: held, now: now)
            case .renewFailed(let lease, let error): return machine.renewFailed(lease, error: error, now: now)
            case .cancelRequested(let id): return machine.cancelRequested(jobID: id, now: now).actions
            case .cancelChecked(let id, let requested):
                return machine.cancelChecked(jobID: id, requested: requested, now: now)
            case .queueRead(let jobs): return machine.queueRead(jobs, now: now)
            case .workArrived: return machine.workArrived(now: now)
            case .shutdown(let grace): return machine.shutdown(grace: grace, now: now)
            case .tick:
                timers.removeAll { $0 <= now }
                return machine.tick(now: now)
            }
        }
    }

    private func perform(
        _ actions: [SlotAction], loop: inout Loop, group: inout DiscardingTaskGroup,
        call: AsyncStream<StoreCall>.Continuation, post: AsyncStream<Input>.Continuation
    ) {
        for action in actions {
            switch action {
            case .spawn(let generation):
                let launches = makeLaunches()
                group.addTask { await self.runSession(generation, launches: launches, post: post) }
            case .kill(let generation):
                if let session = loop.sessions[generation] {
                    session.killAll()
                } else {
                    loop.killOnArrival.insert(generation)
                }
            case .closeInput(let generation):
                loop.sessions[generation]?.letGo()
            case .claim:
                call.yield(.claim(loraKey: loop.machine.heldLoRAKey))
            case .run(let job, let lease, let keepCheckpoint, let checkpoints):
                start(job, lease: lease, keepCheckpoint: keepCheckpoint, checkpoints: checkpoints, loop: loop)
            case .send(let request):
                if let session = loop.machine.session.flatMap({ loop.sessions[$0.generation] }) {
                    try? session.send(request)
                }
            case .renew(let lease, let progress):
                call.yield(.renew(lease, progress))
            case .checkCancel(let id):
                call.yield(.checkCancel(id))
            case .readQueue:
                call.yield(.readQueue)
            case .end(let job, let lease, let end):
                call.yield(.end(job, lease, end))
            case .note(let job, let lease, let kind, let message):
                call.yield(.note(job, lease, kind: kind, message: message))
            case .progress(let job, let lease, let progress):
                // Published through the store (not stored), in order with the job's other calls.
                call.yield(
                    .progress(
                        JobUpdate(
                            kind: .progress, job: job.id, state: .running, attempt: lease.attempt, progress: progress,
                            slot: slot.id, owner: job.owner)))
            case .stepsPerSecond(let rate):
                metrics.stepsPerSecond(slot: slot.id, rate)
            case .workerRestarted:
                metrics.workerRestart(slot: slot.id)
            case .log(let level, let message):
                logger.log(level: level, "\(message)")
            }
        }
    }

    /// One timer task per deadline that moved earlier: each sleeps once and posts a tick. A later deadline needs
    /// none (an earlier tick recomputes it); a tick that finds nothing due does nothing.
    private func schedule(
        _ loop: inout Loop, group: inout DiscardingTaskGroup, post: AsyncStream<Input>.Continuation, now: C.Instant
    ) {
        guard let deadline = loop.machine.nextDeadline else { return }
        if deadline <= now {
            post.yield(.tick)
            return
        }
        if let earliest = loop.timers.min(), earliest <= deadline { return }
        loop.timers.append(deadline)
        let clock = self.clock
        group.addTask {
            do {
                try await clock.sleep(until: deadline, tolerance: nil)
                post.yield(.tick)
            } catch {}
        }
    }

    private func show(_ machine: SlotStateMachine<C.Instant>) {
        let status = machine.status
        running.withLock { $0 = machine.runningJobIDs }
        board.update(slot.id) {
            $0.state = status.state
            $0.setPIDs(status.pids)
            $0.job = status.job
            $0.stage = status.stage
            $0.step = status.step
            $0.totalSteps = status.totalSteps
            if let rate = status.stepsPerSecond { $0.stepsPerSecond = rate }
            if let free = status.freeMemoryBytes { $0.freeMemoryBytes = free }
            if let total = status.totalMemoryBytes { $0.totalMemoryBytes = total }
            $0.restarts = status.restarts
            $0.lastError = status.lastError
            $0.waiting = status.waiting
        }
    }

    // MARK: - Workers

    /// The worker(s) to start for this slot. A parallel group gets a fresh rendezvous file per start
    /// (torch.distributed's file rendezvous must not find an earlier group's file); the session removes it.
    private func makeLaunches() -> [WorkerLaunch] {
        var base = WorkerLaunch(
            engine: configuration.engine, device: slot.device, model: configuration.model,
            dataDirectory: configuration.dataDirectory, memorySaving: configuration.memorySaving,
            textDevice: slot.textDevice, memoryBudgetGiB: configuration.memoryBudgetGiB,
            environment: configuration.workerEnvironment)
        base.approximate = configuration.approximate
        base.loraSlots = configuration.loraSlots
        base.loraMaxRank = configuration.loraMaxRank
        guard let devices = slot.rankDevices, devices.count > 1 else { return [base] }
        let directory = configuration.dataDirectory + "/run"
        let path = directory + "/\(slot.id)-\(UUID().uuidString.prefix(8)).rendezvous"
        return devices.enumerated().map { rank, device in
            var launch = base
            launch.device = device
            launch.textDevice = nil
            launch.group = .init(rank: rank, worldSize: devices.count, initMethod: "file://" + path)
            return launch
        }
    }

    /// Runs one session of the slot's workers: posts their events until every rank's stdout has closed or the
    /// machine lets them go, then posts how they exited.
    private func runSession(_ generation: Int, launches: [WorkerLaunch], post: AsyncStream<Input>.Continuation) async {
        let rendezvous = launches.first?.group.map { String($0.initMethod.dropFirst("file://".count)) }
        if let rendezvous {
            try? FileManager.default.createDirectory(
                atPath: (rendezvous as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        }
        defer { if let rendezvous { try? FileManager.default.removeItem(atPath: rendezvous) } }
        do {
            let (_, exits) = try await spawner.run(launches, logger: logger) { channels in
                let session = WorkerSession(channels: channels)
                post.yield(.spawned(generation: generation, session))
                await withTaskGroup(of: Bool.self) { readers in
                    for (rank, channel) in channels.enumerated() {
                        readers.addTask {
                            for await event in channel.events {
                                post.yield(
                                    .worker(
                                        generation: generation, rank: rank, event,
                                        filesPresent: rank == 0 ? Self.filesPresent(event) : true))
                            }
                            post.yield(.eventsEnded(generation: generation, rank: rank, stderrTail: channel.stderrTail))
                            return false
                        }
                    }
                    readers.addTask {
                        await session.released()
                        return true
                    }
                    var open = channels.count
                    while let letGo = await readers.next() {
                        if letGo { break }
                        open -= 1
                        if open == 0 { break }
                    }
                    readers.cancelAll()
                }
            }
            post.yield(.sessionEnded(generation: generation, exits: exits, startError: nil))
        } catch {
            post.yield(
                .sessionEnded(
                    generation: generation, exits: [],
                    startError: "could not start \(configuration.engine.python): \(error)"))
        }
    }

    /// For a `result`: whether the files it names exist.
    private static func filesPresent(_ event: WorkerEvent) -> Bool {
        guard case .result(let result) = event else { return true }
        let fileManager = FileManager.default
        return fileManager.fileExists(atPath: result.outputs.video)
            && fileManager.fileExists(atPath: result.outputs.metadata)
    }

    /// Clears the job's directory and sends it to the worker. One set of outputs per job: whatever an earlier
    /// attempt left is removed first, except its checkpoint, which the worker checks against the job and resumes
    /// from. Parallel groups neither save nor resume checkpoints (their ranks must start every job at the same
    /// step), so theirs go too.
    private func start(_ job: Job, lease: Lease, keepCheckpoint: Bool, checkpoints: Bool, loop: Loop) {
        let outDir = configuration.outputDirectory(jobID: job.id)
        JobDirectory.clear(outDir, keeping: keepCheckpoint ? JobDirectory.checkpointFile : nil)
        try? FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
        let request = WorkerRequest.Generate(
            job: job, attempt: lease.attempt, outDir: outDir,
            checkpointEvery: checkpoints ? configuration.checkpointEvery : nil, debug: jobDebug?(job),
            images: configuration.images, loras: configuration.loraFiles)
        guard let session = loop.machine.session.flatMap({ loop.sessions[$0.generation] }) else { return }
        do {
            try session.send(.generate(request))
        } catch {
            logger.error("could not send job \(job.id) to the worker: \(error); restarting it")
            session.killAll()
        }
    }

    // MARK: - The store

    private func perform(_ calls: AsyncStream<StoreCall>, post: AsyncStream<Input>.Continuation) async {
        for await call in calls {
            switch call {
            case .claim(let loraKey):
                post.yield(await claim(loraKey: loraKey))
            case .renew(let lease, let progress):
                let now = Date()
                do {
                    let held = try await store.renew(
                        lease, until: now.addingTimeInterval(configuration.leaseDuration.seconds), progress: progress,
                        now: now)
                    post.yield(.renewed(lease, held: held))
                } catch {
                    post.yield(.renewFailed(lease, "\(error)"))
                }
            case .checkCancel(let id):
                let requested = (try? await store.job(id: id))?.cancelRequested == true
                post.yield(.cancelChecked(id, requested: requested))
            case .readQueue:
                let queued = (try? await store.jobs(matching: JobQuery(state: .queued, order: .oldestFirst, limit: 32)))
                post.yield(.queueRead(queued ?? []))
            case .end(let job, let lease, let end):
                await record(end, job: job, lease: lease)
            case .note(let job, _, let kind, let message):
                try? await store.appendEvent(jobID: job.id, kind: kind, message: message, now: Date())
            case .progress(let update):
                await store.publish(update)
            }
        }
    }

    private func claim(loraKey: String) async -> Input {
        let window = configuration.affinityWindow.seconds
        let affinity = window > 0 ? ClaimAffinity(loraKey: loraKey, window: window) : nil
        if let minimum = configuration.minFreeDiskBytes {
            let root = configuration.outputRoot ?? configuration.dataDirectory + "/outputs"
            if let reason = DiskSpace.shortage(at: root, minimum: minimum) { return .claimDeferred(reason) }
        }
        while true {
            let now = Date()
            let claimed: (job: Job, lease: Lease)?
            do {
                claimed = try await store.claim(
                    owner: owner, slot: slot.id,
                    leaseExpiresAt: now.addingTimeInterval(configuration.leaseDuration.seconds),
                    now: now, affinity: affinity)
            } catch {
                return .claimFailed("\(error)")
            }
            guard let (job, lease) = claimed else { return .nothingQueued }
            if let missing = missingLoRA(of: job) {
                // The library file is not on this node (or not as submitted): no attempt here can succeed.
                logger.error("job \(job.id): \(missing)")
                await record(
                    .failed(code: Self.loraMissingCode, message: missing, retry: false, memorySaving: false),
                    job: job, lease: lease)
                continue
            }
            switch await fetchImages(of: job) {
            case nil:
                return .claimed(job, lease)
            case .missing(let message)?:
                // No node can run it: it fails for good, and the slot takes the next job.
                logger.error("job \(job.id): \(message)")
                await record(
                    .failed(code: Self.imageMissingCode, message: message, retry: false, memorySaving: false),
                    job: job, lease: lease)
            case .unavailable(let message)?:
                // The store or this node's disk failed: the job goes back to the queue, its attempt not counted, for
                // this node to try again later or another to take.
                _ = try? await store.release(lease, now: Date())
                return .claimFailed("job \(job.id): \(message); left queued")
            }
        }
    }

    /// The error code of a job whose image no store holds.
    static var imageMissingCode: String { "image_missing" }
    /// The error code of a job whose LoRA file this node's library lacks.
    static var loraMissingCode: String { "lora_missing" }

    /// Why a claimed job's LoRA files are not in this node's library, or nil. Only presence and size are checked
    /// here; the worker checks each file's SHA-256 before applying it.
    private func missingLoRA(of job: Job) -> String? {
        for lora in job.spec.loras ?? [] {
            let path = configuration.loraFiles.url(named: lora.name).path
            if !FileManager.default.fileExists(atPath: path) {
                return "LoRA \(lora.name) is not in this node's library (\(path)): copy the file there, or run the job "
                    + "on the node that has it"
            }
        }
        return nil
    }

    /// Why a claimed job's images cannot be given to the worker.
    private enum ImageProblem {
        /// Neither this node nor the job store has one of them: no attempt can succeed.
        case missing(String)
        /// Reading the store or writing this node's file failed: a later attempt may succeed.
        case unavailable(String)
    }

    /// Makes sure this node has the files of the images a claimed job names before it is sent to a worker (the
    /// worker reads them by path): an image uploaded to another node of a cluster is copied from the job store into
    /// this node's `ImageStore` here. Nil when every file is in place. It runs on the store calls' task, so the
    /// slot's other calls wait for a copy (of at most one image's bytes per image; seconds at worst, well within a
    /// lease).
    private func fetchImages(of job: Job) async -> ImageProblem? {
        let library = ImageLibrary(files: configuration.images, store: store)
        for image in [job.spec.image, job.spec.lastImage].compactMap({ $0 }) {
            do {
                if try await !library.ensureLocal(image) {
                    return .missing(
                        "image \(image.id) is neither in the job store nor in this node's "
                            + "\(configuration.images.directory.path); it was removed or never stored there: upload it "
                            + "again and submit the job anew")
                }
            } catch {
                return .unavailable("image \(image.id) could not be copied from the job store: \(error)")
            }
        }
        return nil
    }

    /// Records how an attempt ended (the store publishes the update); metrics count only what the store took.
    private func record(_ end: JobEnd, job: Job, lease: Lease) async {
        let now = Date()
        do {
            switch end {
            case .succeeded(let outputs):
                if try await store.complete(lease, outputs: outputs, now: now) {
                    metrics.jobFinished(state: "succeeded")
                    for (stage, value) in outputs.secondsPerStage where stage != "total" {
                        metrics.stageSeconds(stage, value)
                    }
                    let total = outputs.secondsPerStage["total"] ?? 0
                    logger.info("job \(job.id) succeeded in \(String(format: "%.2f", total)) s")
                } else {
                    logger.warning(
                        "job \(job.id): result of attempt \(lease.attempt) dropped; the lease is no longer current")
                }
            case .failed(let code, let message, let retry, let memorySaving):
                metrics.failure(code: code)
                guard
                    try await store.fail(
                        lease, code: code, message: message, retry: retry, memorySaving: memorySaving, now: now)
                else { return }
                if retry {
                    doorbell.ring()
                } else {
                    discardCheckpoint(of: job)
                    metrics.jobFinished(state: "failed")
                }
            case .cancelled:
                if try await store.finishCancelled(lease, now: now) {
                    discardCheckpoint(of: job)
                    metrics.jobFinished(state: "cancelled")
                }
            case .released(let reason):
                if try await store.release(lease, now: now) {
                    logger.info("job \(job.id): \(reason)")
                    doorbell.ring()
                }
            }
        } catch {
            logger.error("could not record the end of job \(job.id): \(error); its lease will expire")
        }
    }

    /// A job that ended for good will not resume: its checkpoint only takes space.
    private func discardCheckpoint(of job: Job) {
        try? FileManager.default.removeItem(
            atPath: configuration.outputDirectory(jobID: job.id) + "/" + JobDirectory.checkpointFile)
    }
}

/// The live workers of one slot session, as the driver holds them.
final class WorkerSession: Sendable {
    let channels: [any WorkerChannel]
    private let letGoSignal: AsyncStream<Void>.Continuation
    private let letGoStream: AsyncStream<Void>

    init(channels: [any WorkerChannel]) {
        self.channels = channels
        (letGoStream, letGoSignal) = AsyncStream<Void>.makeStream()
    }

    var pids: [Int32] { channels.map(\.pid) }

    /// Sends the request to every rank.
    func send(_ request: WorkerRequest) throws {
        for channel in channels { try channel.send(request) }
    }

    func killAll() {
        for channel in channels { channel.killGroup() }
    }

    /// Lets the workers go: the session stops reading and closes their stdin.
    func letGo() { letGoSignal.finish() }

    /// Returns once `letGo` was called (or the waiting task is cancelled).
    func released() async {
        for await _ in letGoStream {}
    }
}
