import Foundation
import Logging
import ReelWorker
import ReelWorkerProtocol
import Synchronization

/// The worker processes of one slot, supervised as one: a single worker for a replica or split slot, K ranks for a
/// parallel group (rank 0 first). Requests go to every rank; rank 0's events drive the job. The other ranks'
/// events are followed here: when one of them exits, every rank is killed, so the slot restarts as a whole.
final class WorkerGroup: Sendable {
    let connections: [WorkerConnection]
    private let state = Mutex(State())

    private struct State {
        var ready = Set<Int>()
        /// The ranks (> 0) that sent their final event, by job.
        var finished: [String: Set<Int>] = [:]
        /// Why the group cannot go on: a rank exited or failed to load. Set once.
        var failure: String?
        /// The slot is letting the ranks go (shutdown or restart): their exits are expected.
        var closing = false
    }

    init(connections: [WorkerConnection]) {
        self.connections = connections
    }

    var primary: WorkerConnection { connections[0] }
    var size: Int { connections.count }
    var pids: [Int32] { connections.map(\.pid) }

    /// Sends the request to every rank.
    func send(_ request: WorkerRequest) throws {
        for connection in connections { try connection.send(request) }
    }

    /// Kills every rank and everything they started.
    func killAll() {
        for connection in connections { connection.killGroup() }
    }

    /// Why the group broke, once it has.
    var failure: String? { state.withLock { $0.failure } }

    /// From now on ranks that exit are expected to.
    func close() { state.withLock { $0.closing = true } }

    func fail(_ reason: String) {
        let first = state.withLock { state -> Bool in
            guard state.failure == nil, !state.closing else { return false }
            state.failure = reason
            return true
        }
        if first { killAll() }
    }

    /// Whether every rank above 0 has loaded its model.
    var followersReady: Bool { state.withLock { $0.ready.count == size - 1 } }

    /// Whether every rank above 0 has sent its final event for `job`.
    func followersFinished(_ job: String) -> Bool {
        state.withLock { ($0.finished[job]?.count ?? 0) == size - 1 }
    }

    func forget(_ job: String) {
        state.withLock { _ = $0.finished.removeValue(forKey: job) }
    }

    /// Follows the events of ranks 1…K-1 until they exit; returns when every one has.
    func followRanks(logger: Logger) async {
        guard size > 1 else { return }
        await withTaskGroup(of: Void.self) { tasks in
            for rank in 1..<size {
                let connection = connections[rank]
                tasks.addTask {
                    for await event in connection.events {
                        switch event {
                        case .ready:
                            self.state.withLock { _ = $0.ready.insert(rank) }
                        case .error(let failure) where failure.job == nil:
                            self.fail("rank \(rank) (pid \(connection.pid)) failed: \(failure.message)")
                        case .result(let result):
                            self.state.withLock { _ = $0.finished[result.job, default: []].insert(rank) }
                        case .error(let failure):
                            if let job = failure.job {
                                self.state.withLock { _ = $0.finished[job, default: []].insert(rank) }
                            }
                        default:
                            continue
                        }
                    }
                    if self.state.withLock({ $0.closing || $0.failure != nil }) { return }
                    let last = connection.stderrTail.last(where: { !$0.isEmpty }).map { "; last log line: \($0.prefix(300))" }
                    logger.warning("rank \(rank) (pid \(connection.pid)) of the group exited; stopping every rank")
                    self.fail("rank \(rank) (pid \(connection.pid)) exited\(last ?? "")")
                }
            }
        }
    }

    /// Starts one worker per launch, nested so that leaving `body` (or failing to start a later rank) stops every
    /// one of them. Returns `body`'s result and each rank's exit, rank 0 first.
    static func run<R: Sendable>(
        _ launches: [WorkerLaunch], logger: Logger, grace: Duration,
        stderrHandler: @escaping @Sendable (Int, String) -> Void,
        body: (WorkerGroup) async -> R
    ) async throws -> (result: R, exits: [WorkerExit]) {
        try await start(launches[...], started: [], logger: logger, grace: grace, stderrHandler: stderrHandler, body: body)
    }

    private static func start<R: Sendable>(
        _ launches: ArraySlice<WorkerLaunch>, started: [WorkerConnection], logger: Logger, grace: Duration,
        stderrHandler: @escaping @Sendable (Int, String) -> Void,
        body: (WorkerGroup) async -> R
    ) async throws -> (result: R, exits: [WorkerExit]) {
        guard let launch = launches.first else {
            return (await body(WorkerGroup(connections: started)), [])
        }
        let rank = started.count
        let (inner, exit) = try await WorkerProcess.run(
            launch, logger: logger, grace: grace, stderrHandler: { stderrHandler(rank, $0) }
        ) { connection in
            try await start(
                launches.dropFirst(), started: started + [connection], logger: logger, grace: grace,
                stderrHandler: stderrHandler, body: body)
        }
        return (inner.result, [exit] + inner.exits)
    }
}
