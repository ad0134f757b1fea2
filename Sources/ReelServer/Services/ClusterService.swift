import Foundation
import Logging
import ReelAPI
import ReelScheduler
import ReelStore
import ServiceLifecycle

/// This node's part in a cluster of `reel serve` nodes sharing one store: a heartbeat with its slots every
/// `interval`, so `/v1/workers` on any node lists every node's (wake-ups when any node queues a job come with the
/// store's updates, which the scheduler follows). On a graceful
/// shutdown the node leaves the directory; a node killed outright stays listed, marked stale once its heartbeat is old.
public struct ClusterService: Service {
    public let directory: any ClusterDirectory
    public let scheduler: Scheduler
    /// Where other nodes send clients for this node's files.
    public let advertiseURL: String
    public let interval: Duration
    public let logger: Logger

    public init(
        directory: any ClusterDirectory, scheduler: Scheduler, advertiseURL: String, interval: Duration = .seconds(2),
        logger: Logger
    ) {
        self.directory = directory
        self.scheduler = scheduler
        self.advertiseURL = advertiseURL
        self.interval = interval
        self.logger = logger
    }

    /// A node whose heartbeat is older than this is listed as stale.
    public static let staleAfterSeconds: Double = 10

    public func run() async throws {
        let node = scheduler.configuration.node
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled && !Task.isShuttingDownGracefully {
                    await beat(node)
                    try? await Task.sleep(for: interval)
                }
            }
            // Until the service group shuts down (or is cancelled).
            try? await gracefulShutdown()
            group.cancelAll()
        }
        do {
            try await directory.removeNode(node)
        } catch {
            logger.warning("could not take node \(node) out of the cluster directory: \(error)")
        }
    }

    private func beat(_ node: String) async {
        do {
            // As /v1/workers lists them, so that every node's slots read alike.
            let workers = try APIJSON.makeEncoder().encode(scheduler.workers.map(WorkerResource.init))
            try await directory.heartbeat(node: node, url: advertiseURL, workers: workers)
        } catch {
            logger.warning("heartbeat of node \(node) failed: \(error)")
        }
    }
}
