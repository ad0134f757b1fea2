import Foundation
import Logging
import ReelStore
import ReelWorkerProtocol
import ServiceLifecycle

/// Runs every slot of this node: one warm worker each, fed from the job store. A `Service`: `run()` returns once
/// every worker has stopped after a graceful shutdown (running jobs get `grace`, then are left queued).
public final class Scheduler: Service, Sendable {
    public let configuration: SchedulerConfiguration
    public let store: any JobStore
    public let bus: EventBus
    let board: StatusBoard
    let doorbell = Doorbell()
    let shutdown = ShutdownState()
    let runners: [SlotRunner]
    let logger: Logger

    public init(
        configuration: SchedulerConfiguration, store: any JobStore, bus: EventBus, metrics: SchedulerMetrics,
        logger: Logger, jobDebug: (@Sendable (Job) -> [String: JSONValue]?)? = nil
    ) {
        self.configuration = configuration
        self.store = store
        self.bus = bus
        self.logger = logger
        let board = StatusBoard(
            slots: configuration.slots, node: configuration.node, placementNotes: configuration.placementNotes)
        self.board = board
        let doorbell = doorbell
        let shutdown = shutdown
        runners = configuration.slots.map { slot in
            SlotRunner(
                slot: slot, configuration: configuration, store: store, bus: bus, board: board, metrics: metrics,
                logger: logger, doorbell: doorbell, shutdown: shutdown, jobDebug: jobDebug)
        }
    }

    public func run() async throws {
        // Jobs this node was running when it last stopped (even by kill -9) go back to the queue first.
        let recovered = try await store.recoverOwned(
            by: configuration.node, now: Date(), maxAttempts: configuration.maxAttempts)
        for job in recovered {
            logger.info("recovered job \(job.id) from a previous run: now \(job.state.rawValue)")
            bus.publish(ServerEvent(kind: job.state == .queued ? "requeued" : job.state.rawValue, job: job.id,
                                    state: job.state, message: "recovered after a restart"))
        }
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                for runner in runners {
                    group.addTask { await runner.run() }
                }
                group.addTask { await self.sweepExpiredLeases() }
                await group.waitForAll()
            }
        } onGracefulShutdown: {
            self.beginShutdown()
        }
    }

    /// Stops claiming; running jobs may finish within the grace period.
    public func beginShutdown() {
        logger.info("shutting down: no new jobs; running jobs have \(configuration.grace) to finish")
        shutdown.begin(grace: configuration.grace)
        doorbell.ring()
    }

    /// Wakes idle slots: call after enqueueing.
    public func jobsEnqueued() { doorbell.ring() }

    /// Forwards a cancel to the worker running the job, if it runs here.
    @discardableResult
    public func requestCancel(jobID: String) -> Bool {
        runners.contains { $0.requestCancel(jobID: jobID) }
    }

    public var workers: [WorkerStatus] { board.snapshot }

    /// Ready while at least one worker can take a job.
    public var isReady: Bool { board.snapshot.contains { $0.state == .ready || $0.state == .busy } }

    /// Requeues jobs whose owners stopped renewing (another node died), every few seconds.
    private func sweepExpiredLeases() async {
        while !shutdown.stopping && !Task.isCancelled {
            do {
                for job in try await store.recoverExpired(now: Date(), maxAttempts: configuration.maxAttempts) {
                    logger.info("job \(job.id): its lease expired; now \(job.state.rawValue)")
                    bus.publish(ServerEvent(kind: job.state == .queued ? "requeued" : job.state.rawValue, job: job.id,
                                            state: job.state, message: "its lease expired"))
                    if job.state == .queued { doorbell.ring() }
                }
            } catch {
                logger.error("sweeping expired leases failed: \(error)")
            }
            await doorbell.wait(upTo: .seconds(2), stop: { self.shutdown.stopping })
        }
    }
}
