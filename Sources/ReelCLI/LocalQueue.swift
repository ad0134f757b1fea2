import ArgumentParser
import Foundation
import Logging
import Metrics
import ReelCore
import ReelScheduler
import ReelStore
import ReelWorker

/// Runs jobs on this machine through the same scheduler as `reel serve`, over an in-memory queue that lives as long
/// as the command: one warm worker per slot, leases, retries, the stall timeout, the out-of-memory retry and
/// checkpoints. `reel generate` is a one-job local batch; `reel batch` without `--server` runs every row here.
struct LocalQueue {
    let engine: EngineOptions
    let options: LocalRunOptions
    let plan: PlacementPlan
    /// Job `id`'s files go to `outputRoot/id`.
    let outputRoot: String
    /// The LoRA library and the workers' adapter slots.
    var loras = LoRALibraryOptions()
    /// Consecutive failed starts after which a slot is given up on (and, when every slot is, the command).
    var unhealthyAfter = 3

    /// What the command shows while the jobs run: called after every job event and slot change, with the event (nil
    /// for a slot change) and the slots as they are now.
    typealias Observer = @Sendable (JobUpdate?, [WorkerStatus]) -> Void

    private enum Update: Sendable {
        case event(JobUpdate)
        case slots
    }

    /// Queues `jobs`, runs them until every one has ended, and returns them as they ended. Throws when no slot's
    /// worker can start.
    func run(_ jobs: [NewJob], observe: @escaping Observer = { _, _ in }) async throws -> [String: Job] {
        let store = MemoryJobStore()
        let queued = try await store.enqueueAll(jobs, now: Date())
        var logger = engine.logger()
        logger.logLevel = engine.verbose ? .debug : .error
        // As for `reel serve`: test faults asked for by prompt markers, only when the environment enables them.
        let testFaults = ProcessInfo.processInfo.environment["REEL_TEST_FAULTS"] == "1"
        var configuration = SchedulerConfiguration(
            node: "local", slots: plan.slots, engine: EngineLocation.locate(), model: engine.modelArgument,
            dataDirectory: engine.resolvedDataDir, maxAttempts: options.maxAttempts,
            stallTimeout: .seconds(options.stallTimeout), unhealthyAfter: unhealthyAfter,
            workerEnvironment: (testFaults ? ["REEL_ENGINE_ALLOW_FAULTS": "1"] : [:])
                .merging(try engine.workerEnvironment()) { _, new in new },
            outputRoot: outputRoot,
            memoryBudgetGiB: engine.memoryBudget, memorySaving: engine.memorySaving || plan.memorySaving,
            placementNotes: plan.notes)
        configuration.approximate = engine.approximate
        loras.apply(to: &configuration)
        configuration.minFreeDiskBytes = try ServeCommand.minimumFreeDisk(nil, model: engine.resolveModel())
        let scheduler = Scheduler(
            configuration: configuration, store: store,
            metrics: SchedulerMetrics(factory: NOOPMetricsHandler.instance), logger: logger,
            jobDebug: testFaults ? PromptFaults.debugFields : nil)
        // Subscribed before anything runs, so no event is missed.
        let events = store.updates()
        let slotChanges = scheduler.workerChanges()
        let ids = Set(queued.map(\.id))
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await scheduler.run() }
            defer { scheduler.beginShutdown() }
            let finished = try await withThrowingTaskGroup(of: Void.self) { listeners in
                let (updates, update) = AsyncStream<Update>.makeStream()
                listeners.addTask { for await event in events { update.yield(.event(event)) } }
                listeners.addTask { for await _ in slotChanges { update.yield(.slots) } }
                defer { listeners.cancelAll() }
                var finished: [String: Job] = [:]
                for await item in updates {
                    let workers = scheduler.workers
                    switch item {
                    case .event(let event):
                        observe(event, workers)
                        guard event.state.isTerminal, ids.contains(event.job),
                            let job = try await store.job(id: event.job), job.state.isTerminal
                        else { continue }
                        finished[job.id] = job
                        if finished.count == ids.count { return finished }
                    case .slots:
                        observe(nil, workers)
                        if !workers.isEmpty, workers.allSatisfy({ $0.state == .unhealthy }) {
                            throw ValidationError(
                                "no worker could start: \(workers.first?.lastError ?? "unknown error")")
                        }
                    }
                }
                return finished
            }
            scheduler.beginShutdown()
            try await group.waitForAll()
            return finished
        }
    }
}

/// How a local command (`reel generate`, `reel batch` without `--server`) supervises its jobs, as `reel serve` does.
struct LocalRunOptions: ParsableArguments {
    @Option(help: "Attempts after which a job fails for good (a crashed worker is restarted and the job retried).")
    var maxAttempts = 3

    @Option(help: ArgumentHelp("A worker silent this long is killed and its job retried.", valueName: "seconds"))
    var stallTimeout: Double = 300

    func validate() throws {
        guard maxAttempts >= 1 else { throw ValidationError("--max-attempts must be at least 1, not \(maxAttempts)") }
        guard stallTimeout.isFinite, stallTimeout > 0, stallTimeout <= 86_400 else {
            throw ValidationError("--stall-timeout must be between 0 and 86400 seconds, not \(stallTimeout)")
        }
    }
}
