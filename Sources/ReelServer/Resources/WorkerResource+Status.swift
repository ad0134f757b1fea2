import ReelAPI
import ReelScheduler

extension WorkerResource {
    /// A slot of this node as `/v1/workers` lists it, and as its heartbeat tells the other nodes.
    init(_ status: WorkerStatus) {
        self.init(
            slot: status.slot, node: status.node, device: status.device, placement: status.placement,
            textDevice: status.textDevice,
            ranks: status.ranks?.map { Rank(rank: $0.rank, device: $0.device, pid: $0.pid) }, sharded: status.sharded,
            placementNotes: status.placementNotes, state: State(rawValue: status.state.rawValue), pid: status.pid,
            job: status.job, step: status.step, totalSteps: status.totalSteps, stage: status.stage,
            stepsPerSecond: status.stepsPerSecond, freeMemoryBytes: status.freeMemoryBytes,
            totalMemoryBytes: status.totalMemoryBytes, restarts: status.restarts, lastError: status.lastError,
            waiting: status.waiting, since: WireJSON.dateStyle.format(status.since))
    }
}
