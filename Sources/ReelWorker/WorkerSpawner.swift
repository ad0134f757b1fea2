import Logging
import ReelWorkerProtocol

/// One live worker as the scheduler talks to it: its events in, its requests out, its process group to kill.
public protocol WorkerChannel: Sendable {
    /// The worker's process id (also its process group's).
    var pid: Int32 { get }
    /// Decoded events, in order; the stream ends when the worker closes its stdout (it exited or was killed).
    var events: AsyncStream<WorkerEvent> { get }
    /// The last lines it wrote to stderr, for error messages.
    var stderrTail: [String] { get }
    func send(_ request: WorkerRequest) throws
    /// Kills the worker and everything it started, at once.
    func killGroup()
}

extension WorkerConnection: WorkerChannel {}

/// Starts the workers of one slot session: one for a replica or split slot, one per rank for a parallel group.
/// The seam between the scheduler and processes: the scheduler's driver talks only to this and `WorkerChannel`.
public protocol WorkerSpawner: Sendable {
    /// Starts one worker per launch (rank 0 first) and runs `body` with their channels. When `body` returns, their
    /// stdin is closed so they exit; any that has not exited after a grace is killed; failing to start any of them
    /// stops the others. Returns `body`'s result and each worker's exit, rank 0 first.
    func run<R: Sendable>(
        _ launches: [WorkerLaunch], logger: Logger, body: ([any WorkerChannel]) async -> R
    ) async throws -> (result: R, exits: [WorkerExit])
}

/// Workers as child processes (`python -m reel_engine.worker`, or the module the launch's engine names).
public struct ProcessWorkerSpawner: WorkerSpawner {
    /// How long a worker may take to exit after its stdin closes before it is killed.
    public var grace: Duration
    /// Each line a worker writes to stderr, with its rank.
    public var stderrHandler: @Sendable (Int, String) -> Void

    public init(grace: Duration = .seconds(5), stderrHandler: @escaping @Sendable (Int, String) -> Void = { _, _ in }) {
        self.grace = grace
        self.stderrHandler = stderrHandler
    }

    public func run<R: Sendable>(
        _ launches: [WorkerLaunch], logger: Logger, body: ([any WorkerChannel]) async -> R
    ) async throws -> (result: R, exits: [WorkerExit]) {
        try await start(launches[...], started: [], logger: logger, body: body)
    }

    /// Starts the next rank inside the previous one's scope, so that leaving `body` (or failing to start a later
    /// rank) stops every one of them.
    private func start<R: Sendable>(
        _ launches: ArraySlice<WorkerLaunch>, started: [any WorkerChannel], logger: Logger,
        body: ([any WorkerChannel]) async -> R
    ) async throws -> (result: R, exits: [WorkerExit]) {
        guard let launch = launches.first else { return (await body(started), []) }
        let rank = started.count
        let handler = stderrHandler
        let (inner, exit) = try await WorkerProcess.run(
            launch, logger: logger, grace: grace, stderrHandler: { handler(rank, $0) }
        ) { connection in
            try await start(launches.dropFirst(), started: started + [connection], logger: logger, body: body)
        }
        return (inner.result, [exit] + inner.exits)
    }
}
