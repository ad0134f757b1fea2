import Foundation
import Logging
import ReelCore
import ReelStore
import ReelWorker
import ReelWorkerProtocol
import ServiceLifecycle
import Synchronization

/// Runs every slot of this node: one warm worker each, fed from the job store. A `Service`: `run()` returns once
/// every worker has stopped after a graceful shutdown (running jobs get `grace`, then are left queued).
///
/// The slots form a layout. With `configuration.relayout` (`--placement auto`) the node changes layout as the queue
/// changes (see `Relayout`); otherwise the layout it starts with is the one it keeps.
public final class Scheduler: Service, Sendable {
    public let configuration: SchedulerConfiguration
    public let store: any JobStore
    let doorbell: Doorbell
    /// Rung whenever a slot's status changes.
    private let statusChanged: Doorbell
    /// The node's shutdown: ends every layout.
    let shutdown = ShutdownState()
    let metrics: SchedulerMetrics
    let logger: Logger
    let jobDebug: (@Sendable (Job) -> [String: JSONValue]?)?
    /// Makes the runner of one slot of a layout (a `SlotDriver` over the scheduler's clock and spawner).
    let makeRunner: @Sendable (Slot, StatusBoard, ShutdownState) -> any SlotRunning
    private let current: Mutex<Layout>

    /// One layout of slots: their statuses, their runners and the stop that ends them (the node's shutdown, or a
    /// change of layout, which lets running jobs finish).
    final class Layout: Sendable {
        let slots: [Slot]
        let board: StatusBoard
        let runners: [any SlotRunning]
        let stop: ShutdownState

        init(slots: [Slot], board: StatusBoard, runners: [any SlotRunning], stop: ShutdownState) {
            self.slots = slots
            self.board = board
            self.runners = runners
            self.stop = stop
        }
    }

    /// A scheduler whose slots run worker processes and read the system's continuous clock.
    public convenience init(
        configuration: SchedulerConfiguration, store: any JobStore, metrics: SchedulerMetrics,
        logger: Logger, jobDebug: (@Sendable (Job) -> [String: JSONValue]?)? = nil
    ) {
        let slotLogger = logger
        let spawner = ProcessWorkerSpawner(grace: .seconds(5)) { rank, line in
            slotLogger.debug("engine\(rank > 0 ? " rank \(rank)" : ""): \(line)")
        }
        self.init(
            configuration: configuration, store: store, metrics: metrics, logger: logger, jobDebug: jobDebug,
            spawner: spawner, clock: ContinuousClock())
    }

    /// A scheduler with the given worker spawner and clock (the slots' timers follow `clock`).
    public init<C: Clock>(
        configuration: SchedulerConfiguration, store: any JobStore, metrics: SchedulerMetrics,
        logger: Logger, jobDebug: (@Sendable (Job) -> [String: JSONValue]?)? = nil, spawner: any WorkerSpawner,
        clock: C
    ) where C.Duration == Duration {
        self.configuration = configuration
        self.store = store
        self.metrics = metrics
        self.logger = logger
        self.jobDebug = jobDebug
        let doorbell = Doorbell()
        self.doorbell = doorbell
        let statusChanged = Doorbell()
        self.statusChanged = statusChanged
        makeRunner = { slot, board, stop in
            SlotDriver(
                slot: slot, configuration: configuration, store: store, board: board, metrics: metrics,
                logger: logger, doorbell: doorbell, shutdown: stop, jobDebug: jobDebug, spawner: spawner, clock: clock)
        }
        current = Mutex(
            Self.makeLayout(
                slots: configuration.slots, notes: configuration.placementNotes, node: configuration.node,
                changes: statusChanged, makeRunner: makeRunner))
    }

    private static func makeLayout(
        slots: [Slot], notes: [String], node: String, changes: Doorbell,
        makeRunner: (Slot, StatusBoard, ShutdownState) -> any SlotRunning
    ) -> Layout {
        let board = StatusBoard(slots: slots, node: node, placementNotes: notes, changes: changes)
        let stop = ShutdownState()
        return Layout(slots: slots, board: board, runners: slots.map { makeRunner($0, board, stop) }, stop: stop)
    }

    private var layout: Layout { current.withLock { $0 } }

    public func run() async throws {
        // Jobs this node was running when it last stopped (even by kill -9) go back to the queue first.
        let recovered = try await store.recoverOwned(
            by: configuration.node, now: Date(), maxAttempts: configuration.maxAttempts)
        for job in recovered {
            logger.info("recovered job \(job.id) from a previous run: now \(job.state.rawValue)")
        }
        let updates = store.updates()
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { node in
                // Other nodes' updates (PostgreSQL), and a wake-up for idle slots whenever any node queues a job.
                node.addTask { await self.store.relayUpdates() }
                node.addTask {
                    for await update in updates where update.kind == .queued || update.kind == .requeued {
                        self.doorbell.ring()
                    }
                }
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { await self.runLayouts() }
                    group.addTask { await self.sweepExpiredLeases() }
                    await group.waitForAll()
                }
                node.cancelAll()
            }
        } onGracefulShutdown: {
            self.beginShutdown()
        }
    }

    /// Runs the current layout until it stops; starts the next one when the queue asked for a change.
    private func runLayouts() async {
        var layout = self.layout
        // Layouts whose workers could not start (a parallel group on GPUs where it cannot run): never chosen again.
        var broken: Set<[Slot]> = []
        while true {
            let running = layout
            let avoiding = broken
            let next: Change? = await withTaskGroup(of: Change?.self) { group in
                for runner in running.runners {
                    group.addTask {
                        await runner.run()
                        return nil
                    }
                }
                if let relayout = configuration.relayout {
                    group.addTask { await self.followQueue(running, relayout, avoiding: avoiding) }
                }
                var next: Change?
                for await change in group where change != nil { next = change }
                return next
            }
            guard let next else { return }
            if next.leavesBroken { broken.insert(running.slots) }
            let fresh = Self.makeLayout(
                slots: next.plan.slots, notes: next.plan.notes, node: configuration.node, changes: statusChanged,
                makeRunner: makeRunner)
            let stopping = current.withLock { current in
                if shutdown.stopping { return true }
                current = fresh
                return false
            }
            if stopping { return }
            logger.info("layout changed: \(next.plan.lines.joined(separator: "; "))")
            metrics.layoutChange(to: next.plan.chosen.description)
            layout = fresh
        }
    }

    /// A change of layout `followQueue` decided on.
    struct Change: Sendable {
        var plan: PlacementPlan
        /// The layout it leaves could not start its workers.
        var leavesBroken: Bool
    }

    /// Watches the queue while `layout` runs (`--placement auto`). When `Relayout.shouldChange` says so, stops the
    /// layout's slots from claiming (their running jobs finish) and returns the plan to start next; nil when the
    /// layout stopped for another reason. A layout with a slot that keeps failing to start is left for the layout
    /// with the most slots (replicas), and `avoiding` holds such layouts, which are not chosen again.
    private func followQueue(_ layout: Layout, _ relayout: Relayout, avoiding: Set<[Slot]>) async -> Change? {
        var wanted: (slots: [Slot], since: ContinuousClock.Instant)?
        var idleSince: ContinuousClock.Instant?
        while !layout.stop.stopping && !Task.isCancelled {
            await doorbell.wait(upTo: relayout.interval, clock: ContinuousClock())
            if layout.stop.stopping { break }
            try? await Task.sleep(for: .milliseconds(20))  // a ring is an enqueue: let the slots claim first
            let now = ContinuousClock.now
            let statuses = layout.board.snapshot
            if let sick = statuses.first(where: { $0.state == .unhealthy }), var fallback = relayout.plan(.max),
                fallback.slots != layout.slots, !avoiding.contains(fallback.slots)
            {
                let reason =
                    "auto: slot \(sick.slot) could not start its workers (\(sick.lastError ?? "no reason given")); "
                    + "this node uses the layout with the most slots instead and does not try that one again"
                fallback.notes.append(reason)
                logger.error("\(reason)")
                layout.stop.begin(grace: nil)
                return Change(plan: fallback, leavesBroken: true)
            }
            let idle = statuses.allSatisfy { $0.state == .ready && $0.job == nil }
            idleSince = idle ? (idleSince ?? now) : nil
            let depth: Int
            do {
                depth = try await store.counts()[.queued] ?? 0
            } catch {
                logger.error("auto placement: counting the queue failed: \(error)")
                continue
            }
            guard let plan = relayout.plan(depth), plan.slots != layout.slots, !avoiding.contains(plan.slots) else {
                wanted = nil
                continue
            }
            if wanted?.slots != plan.slots { wanted = (plan.slots, now) }
            let since = wanted?.since ?? now
            if Relayout.shouldChange(
                from: layout.slots, to: plan.slots, wantedFor: now - since, idleFor: idleSince.map { now - $0 },
                settle: relayout.settle)
            {
                let summary = plan.lines.joined(separator: "; ")
                logger.info(
                    "auto placement: \(depth) job(s) waiting; changing layout once running jobs finish: \(summary)")
                layout.stop.begin(grace: nil)
                return Change(plan: plan, leavesBroken: false)
            }
        }
        return nil
    }

    /// Stops claiming; running jobs may finish within the grace period.
    public func beginShutdown() {
        logger.info("shutting down: no new jobs; running jobs have \(configuration.grace) to finish")
        current.withLock { layout in
            shutdown.begin(grace: configuration.grace)
            layout.stop.begin(grace: configuration.grace)
        }
        doorbell.ring()
    }

    /// Wakes idle slots: call after enqueueing.
    public func jobsEnqueued() { doorbell.ring() }

    /// Forwards a cancel to the worker running the job, if it runs here.
    @discardableResult
    public func requestCancel(jobID: String) -> Bool {
        layout.runners.contains { $0.requestCancel(jobID: jobID) }
    }

    public var workers: [WorkerStatus] { layout.board.snapshot }

    /// A wake-up whenever a slot's status changes (read `workers` for it), while the stream is iterated.
    public func workerChanges() -> AsyncStream<Void> { statusChanged.rings() }

    /// Ready while at least one worker can take a job (a ready slot waiting for disk space cannot).
    public var isReady: Bool { workers.contains { ($0.state == .ready && $0.waiting == nil) || $0.state == .busy } }

    /// Requeues jobs whose owners stopped renewing (another node died), every few seconds.
    private func sweepExpiredLeases() async {
        while !shutdown.stopping && !Task.isCancelled {
            do {
                for job in try await store.recoverExpired(now: Date(), maxAttempts: configuration.maxAttempts) {
                    logger.info("job \(job.id): its lease expired; now \(job.state.rawValue)")
                    if job.state == .queued { doorbell.ring() }
                }
            } catch {
                logger.error("sweeping expired leases failed: \(error)")
            }
            await doorbell.wait(upTo: .seconds(2), clock: ContinuousClock())
        }
    }
}
